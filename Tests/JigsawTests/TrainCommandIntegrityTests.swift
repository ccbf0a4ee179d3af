import Foundation
import Glibc
import Jigsaw
import TensorKit
import Testing

/// `jigsaw-train` on hand-made and damaged files: resumed runs, damaged checkpoints, stale
/// temporary files, NaN weights.
@Suite struct TrainCommandIntegrityTests {
    /// A folder of 16 fixture digits as PNGs (one set, used for training and testing).
    func digitFolder() throws -> String {
        let directory = try integrityDirectory()
        let digits = try ImageDataset.mnist(directory: fixturesDirectory, split: .test, limit: 16)
        for index in 0..<digits.count {
            let image = Image(tensor: digits.tensor(index..<(index + 1)).reshaped([1, 28, 28]))
            writeFile(directory + "/digit-\(index).png", try PNG.encode(image))
        }
        return directory
    }

    func trainArguments(data: String, output: String) -> [String] {
        ["train", "--dataset", "folder", "--data-dir", data, "--grid", "2", "--hidden", "4", "--batch-size", "4",
         "--epochs", "2", "--validation-size", "0", "--eval-limit", "4", "--seed", "3", "--threads", "1", "-o", output]
    }

    @Test func aResumedRunCountsEveryPartAndSaysItsFirstEpochIsPartial() throws {
        let data = try digitFolder()
        defer { try? FileManager.default.removeItem(atPath: data) }
        let output = data + "/model.safetensors", checkpoint = output + ".checkpoint"
        let commands = TrainCommandTests()
        let first = try commands.run(trainArguments(data: data, output: output))
        #expect(first.status == 0, "\(first.error)")
        #expect(first.error.contains("epoch 1: loss ") && first.error.contains("epoch 2: loss "), "\(first.error)")

        // As if the run had been killed one step into epoch 2 after 1000 s of training.
        try Safetensors.rewriteMetadata(ofFile: checkpoint) { metadata in
            metadata.merging(["checkpoint.epoch": "1", "checkpoint.step_in_epoch": "1", "checkpoint.global_step": "5",
                              "checkpoint.seconds": "1000.000"]) { _, new in new }
        }
        let second = try commands.run(trainArguments(data: data, output: output) + ["--resume"])
        #expect(second.status == 0, "\(second.error)")
        #expect(second.error.contains("resumed from \(checkpoint) at epoch 2, step 1 (1000 s of training before)"), "\(second.error)")
        #expect(second.error.contains("epoch 2 (resumed at step 1 of 4): loss "), "\(second.error)")
        #expect(!second.error.contains("warning"), "\(second.error)")
        let seconds = try #require(SafetensorsFile(contentsOfFile: output).metadata["train.seconds"].flatMap(Int.init))
        #expect((1000..<1300).contains(seconds), "train.seconds \(seconds)")
        let summary = try JSONSerialization.jsonObject(with: Data(second.output.utf8)) as? [String: Any]
        #expect((summary?["seconds"] as? Double ?? 0) >= 1000, "\(second.output)")
        #expect(try SafetensorsFile(contentsOfFile: checkpoint).metadata["checkpoint.seconds"].flatMap(Double.init) ?? 0 >= 1000)
    }

    @Test func aDamagedCheckpointStopsTheResumeWithItsNameAndAStaleTemporaryFileIsRemoved() throws {
        let data = try digitFolder()
        defer { try? FileManager.default.removeItem(atPath: data) }
        let output = data + "/model.safetensors", checkpoint = output + ".checkpoint"
        let commands = TrainCommandTests()
        #expect(try commands.run(trainArguments(data: data, output: output)).status == 0)
        let original = try readBytes(checkpoint)
        let expected = try #require(SafetensorsFile(bytes: original).metadata[Safetensors.checksumKey])
        let damaged = flippingEvery(997, ofDataIn: original)
        writeFile(checkpoint, damaged)
        var length = 0
        for k in 0..<8 { length |= Int(damaged[k]) << (8 * k) }
        let found = SHA256.hex(of: Array(damaged[(8 + length)...]))
        // What `kill -9` during a checkpoint write leaves behind.
        let stale = data + "/.model.safetensors.checkpoint.\(try TrainCommandIntegrityTests.deadProcessID()).q1w2e3.tmp"
        writeFile(stale, [1, 2, 3])
        let resumed = try commands.run(trainArguments(data: data, output: output) + ["--resume"])
        #expect(resumed.status == 1)
        #expect(resumed.error.contains("removed \(stale), left by an interrupted write"), "\(resumed.error)")
        #expect(!FileManager.default.fileExists(atPath: stale))
        #expect(resumed.error.contains(
            "cannot resume from \(checkpoint): the tensor data is damaged: its SHA-256 is \(found), the metadata's checksum.sha256 is \(expected)"),
            "\(resumed.error)")
    }

    @Test func evaluateNamesTheFileAndTheTensorOfANaNWeight() throws {
        let directory = try integrityDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let shipped = ModelIntegrityTests.repository.appendingPathComponent("Models/mnist-2x2.safetensors").path
        let file = try SafetensorsFile(contentsOfFile: shipped)
        var tensors = try ModelFile.floatTensors(of: file, path: shipped)
        let name = try #require(tensors.keys.sorted().first)
        var storage = try #require(tensors[name]).storage
        storage[2] = .nan
        tensors[name] = Tensor(shape: try #require(tensors[name]).shape, storage: storage)
        let path = directory + "/nan.safetensors"
        try Safetensors.write(tensors, metadata: file.metadata, toFile: path)
        let result = try TrainCommandTests().run(["evaluate", "--weights", path, "--data-dir", fixturesDirectory, "--limit", "5"])
        #expect(result.status == 1)
        #expect(result.error.contains("\(path): tensor '\(name)' holds nan at element 2; the file is damaged"), "\(result.error)")
    }

    @Test func evaluateWarnsOfAFileWithoutChecksum() throws {
        let export = ModelIntegrityTests.torchExport
        let result = try TrainCommandTests().run(["evaluate", "--weights", export, "--data-dir", fixturesDirectory, "--limit", "5", "--json"])
        #expect(result.status == 0, "\(result.error)")
        #expect(result.error.contains("warning: \(export) has no checksum.sha256; its tensors were only checked finite"), "\(result.error)")
    }

    @Test func checksumVerifiesAddsAndRefuses() throws {
        let directory = try integrityDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/export.safetensors"
        try FileManager.default.copyItem(atPath: ModelIntegrityTests.torchExport, toPath: path)
        let commands = TrainCommandTests()
        #expect(try commands.run(["checksum", path]).output == "\(path): no checksum.sha256 (use --add to record one)\n")
        let added = try commands.run(["checksum", "--add", path])
        let digest = try #require(SafetensorsFile(contentsOfFile: path).metadata[Safetensors.checksumKey])
        #expect(added.output == "\(path): added \(digest)\n")
        #expect(try commands.run(["checksum", path]).output == "\(path): verified \(digest)\n")
        writeFile(path, flippingEvery(499, ofDataIn: try readBytes(path)))
        let refused = try commands.run(["checksum", path])
        #expect(refused.status == 1)
        #expect(refused.error.hasPrefix("\(path): cannot load model \(path): the tensor data is damaged") || refused.error.hasPrefix("\(path): the tensor data is damaged"),
                "\(refused.error)")
    }

    static func deadProcessID() throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/true")
        try process.run()
        process.waitUntilExit()
        return process.processIdentifier
    }
}
