import ArgumentParser
import Foundation
import Jigsaw
import TensorKit

struct ChecksumCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checksum",
        abstract: "Verify the tensor-data checksum of weights files and checkpoints, or add one where it is missing.",
        discussion: """
        Files written by this project carry the SHA-256 of their data section as the metadata entry \
        \(Safetensors.checksumKey), which every load verifies. With --add, a file without one (a PyTorch \
        export, or a file written before checksums) gets it: only the header is rewritten; the other metadata \
        and the tensor data stay byte for byte. Exits with status 1 when a file is damaged or unreadable.
        """)

    @Argument(help: "The .safetensors files.") var files: [String]
    @Flag(help: "Add the checksum to files that have none.") var add = false

    func run() throws {
        var failed = false
        for path in files {
            do {
                let file = try SafetensorsFile(contentsOfFile: path)
                if file.isChecksumVerified {
                    print("\(path): verified \(file.metadata[Safetensors.checksumKey] ?? "")")
                } else if add {
                    try JigsawModelFile.addChecksum(toFile: path)
                    let stamped = try SafetensorsFile(contentsOfFile: path)
                    guard stamped.data == file.data, stamped.entries == file.entries,
                          stamped.metadata.filter({ $0.key != Safetensors.checksumKey }) == file.metadata else {
                        throw ValidationError("\(path): the rewritten file differs in more than its checksum")
                    }
                    print("\(path): added \(stamped.metadata[Safetensors.checksumKey] ?? "")")
                } else {
                    print("\(path): no \(Safetensors.checksumKey) (use --add to record one)")
                }
            } catch {
                failed = true
                FileHandle.standardError.write(Data("\(path): \(error)\n".utf8))
            }
        }
        if failed { throw ExitCode.failure }
    }
}
