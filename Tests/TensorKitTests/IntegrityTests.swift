import Foundation
import Glibc
import Testing
import TensorKit

/// A fresh directory under the system's temporary folder.
private func temporaryDirectory() throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("integrity-\(getpid())-\(UUID())").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// The data section of safetensors bytes (after the 8-byte length and the header).
private func dataSection(_ bytes: [UInt8]) -> [UInt8] {
    var length = 0
    for k in 0..<8 { length |= Int(bytes[k]) << (8 * k) }
    return Array(bytes[(8 + length)...])
}

/// `bytes` with every `stride`-th byte of the data section inverted (starting at data byte 0).
func flippingDataBytes(_ bytes: [UInt8], every stride: Int) -> [UInt8] {
    var length = 0
    for k in 0..<8 { length |= Int(bytes[k]) << (8 * k) }
    var result = bytes
    for index in Swift.stride(from: 8 + length, to: bytes.count, by: stride) { result[index] ^= 0xFF }
    return result
}

/// `sha256sum` of `bytes`, an implementation independent of the one under test.
private func systemSHA256(_ bytes: [UInt8]) throws -> String? {
    guard FileManager.default.isExecutableFile(atPath: "/usr/bin/sha256sum") else { return nil }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
    let input = Pipe(), output = Pipe()
    process.standardInput = input
    process.standardOutput = output
    try process.run()
    input.fileHandleForWriting.write(Data(bytes))
    try input.fileHandleForWriting.close()
    let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return text.split(separator: " ").first.map(String.init)
}

@Suite struct SHA256Tests {
    // FIPS 180-2 appendix B and the NIST example values.
    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
        ("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"),
    ])
    func matchesTheStandardsExamples(message: String, digest: String) {
        #expect(SHA256.hex(of: Array(message.utf8)) == digest)
    }

    @Test func aMillionAsInUnevenChunks() {
        // FIPS 180-2 B.3; chunks of 1…97 bytes cross every block boundary position.
        var hasher = SHA256()
        let chunk = [UInt8](repeating: UInt8(ascii: "a"), count: 97)
        var left = 1_000_000, size = 1
        while left > 0 {
            let take = min(size, left)
            chunk.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<take])) }
            left -= take
            size = size % 97 + 1
        }
        let hex = hasher.finalize().map { String(format: "%02x", $0) }.joined()
        #expect(hex == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test(arguments: [0 as UInt64, 1, 2])
    func agreesWithSha256sumOnEveryPaddingLength(seed: UInt64) throws {
        var rng = SeededGenerator(seed: seed)
        for length in [55, 56, 63, 64, 65, 119, 120, 128, 1000 + rng.nextInt(below: 5000)] {
            let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            guard let reference = try systemSHA256(bytes) else { return }
            #expect(SHA256.hex(of: bytes) == reference, "seed \(seed), length \(length)")
        }
    }
}

@Suite struct SafetensorsIntegrityTests {
    static let tensors: [String: Tensor] = [
        "conv.weight": Tensor(shape: [4, 1, 3, 3], storage: (0..<36).map { Float($0) * 0.25 - 4 }),
        "conv.bias": Tensor(shape: [4], storage: [0.5, -0.5, 1, 2]),
    ]

    @Test func writtenFilesCarryTheChecksumOfTheirDataSection() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/model.safetensors"
        try Safetensors.write(Self.tensors, metadata: ["grid": "2"], toFile: path)
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let file = try SafetensorsFile(bytes: bytes)
        #expect(file.isChecksumVerified)
        #expect(file.metadata["grid"] == "2")
        if let reference = try systemSHA256(dataSection(bytes)) {
            #expect(file.metadata[Safetensors.checksumKey] == reference)
        }
        // Encoding without the flag is unchanged: no checksum.
        #expect(try SafetensorsFile(bytes: Safetensors.encode(Self.tensors, metadata: ["grid": "2"])).isChecksumVerified == false)
    }

    @Test(arguments: [499, 997, 1])
    func aFlippedDataByteIsAChecksumMismatch(stride: Int) throws {
        let bytes = try Safetensors.encode(Self.tensors, metadata: ["grid": "2"], checksum: true)
        let expected = try SafetensorsFile(bytes: bytes).metadata[Safetensors.checksumKey] ?? ""
        let damaged = flippingDataBytes(bytes, every: stride)
        let found = SHA256.hex(of: dataSection(damaged))
        #expect(found != expected)
        #expect(throws: SafetensorsError.checksumMismatch(expected: expected, found: found)) {
            try SafetensorsFile(bytes: damaged)
        }
        let message = SafetensorsError.checksumMismatch(expected: expected, found: found).description
        #expect(message == "the tensor data is damaged: its SHA-256 is \(found), the metadata's checksum.sha256 is \(expected)")
    }

    @Test(arguments: ["", "abc", String(repeating: "A", count: 64), String(repeating: "0", count: 63) + "g"])
    func aMalformedChecksumIsRefused(value: String) throws {
        let bytes = try Safetensors.encode(Self.tensors, metadata: [Safetensors.checksumKey: value])
        #expect(throws: SafetensorsError.invalidChecksum(value)) { try SafetensorsFile(bytes: bytes) }
    }

    @Test func aFileWithoutAChecksumStillLoads() throws {
        let file = try SafetensorsFile(bytes: Safetensors.encode(Self.tensors, metadata: ["format": "pt"]))
        #expect(!file.isChecksumVerified)
        #expect(try file.tensor(named: "conv.bias") == Self.tensors["conv.bias"])
    }

    @Test func addingAChecksumKeepsTheTensorBytesAndTheOtherMetadata() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/export.safetensors"
        // A hand-made file with F16 and I64 tensors, which a float32 re-encoding would change.
        let header = #"{"__metadata__":{"format":"pt"},"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"n":{"dtype":"I64","shape":[],"data_offsets":[4,12]}}"#
        let headerBytes = Array(header.utf8)
        let data: [UInt8] = [0x00, 0x3C, 0x00, 0xC0, 7, 0, 0, 0, 0, 0, 0, 0]
        let original = (0..<8).map { UInt8(truncatingIfNeeded: UInt64(headerBytes.count) >> (8 * UInt64($0))) } + headerBytes + data
        #expect(FileManager.default.createFile(atPath: path, contents: Data(original)))
        try Safetensors.rewriteMetadata(ofFile: path) { $0 }
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(dataSection(bytes) == data)
        let file = try SafetensorsFile(bytes: bytes)
        #expect(file.isChecksumVerified)
        #expect(file.metadata == ["format": "pt", Safetensors.checksumKey: SHA256.hex(of: data)])
        #expect(file.entries == (try SafetensorsFile(bytes: original)).entries)
    }
}

@Suite struct TemporaryFileCleanupTests {
    /// A process id no process has: a child that has been reaped.
    static func deadProcessID() throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/true")
        try process.run()
        process.waitUntilExit()
        let pid = process.processIdentifier
        #expect(kill(pid, 0) != 0 && errno == ESRCH)
        return pid
    }

    @Test func staleTemporaryFilesOfTheDestinationAreRemovedAndNothingElse() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let dead = try Self.deadProcessID()
        let live = getppid()
        // (name, removed by the next write of model.safetensors)
        let cases: [(String, Bool)] = [
            (".model.safetensors.\(dead).k3j9x2.tmp", true),           // left by a killed writer
            (".model.safetensors.\(getpid()).abc.tmp", true),           // this process id, not being written
            (".model.safetensors.old1.tmp", true),                      // earlier format, older than 10 minutes
            (".model.safetensors.new1.tmp", false),                     // earlier format, recent: maybe being written
            (".model.safetensors.\(live).k3j9x2.tmp", false),           // a live writer's
            (".other.safetensors.\(dead).k3j9x2.tmp", false),           // another destination's
            (".model.safetensors.\(dead).K3J9.tmp", false),             // not a name this writer makes
            (".model.safetensors.\(dead).k3j9x2.tmp.keep", false),
            ("model.safetensors.\(dead).k3j9x2.tmp", false),
            (".model.safetensors.tmp", false),
            ("notes.txt", false),
        ]
        for (name, _) in cases {
            #expect(FileManager.default.createFile(atPath: directory + "/" + name, contents: Data("x".utf8)))
        }
        let old = Date().addingTimeInterval(-3600)
        try FileManager.default.setAttributes([.modificationDate: old], ofItemAtPath: directory + "/.model.safetensors.old1.tmp")
        try Safetensors.write(["w": Tensor(shape: [1], storage: [1])], toFile: directory + "/model.safetensors")
        let left = Set(try FileManager.default.contentsOfDirectory(atPath: directory))
        for (name, removed) in cases {
            #expect(left.contains(name) == !removed, "\(name) should be \(removed ? "removed" : "kept")")
        }
        #expect(left.contains("model.safetensors"))
        #expect(left.count == cases.filter { !$0.1 }.count + 1, "\(left.sorted())")
    }

    @Test func aKilledWriterLeavesATemporaryFileThatTheNextStartRemoves() throws {
        // What `kill -9` during a checkpoint write leaves: a temporary file of a process that is gone.
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/run.ck"
        let stale = directory + "/.run.ck.\(try Self.deadProcessID()).1x2y3z.tmp"
        #expect(FileManager.default.createFile(atPath: stale, contents: Data(repeating: 7, count: 100)))
        #expect(Safetensors.removeStaleTemporaryFiles(of: path) == [stale])
        #expect(!FileManager.default.fileExists(atPath: stale))
        #expect(Safetensors.removeStaleTemporaryFiles(of: path).isEmpty)
    }
}
