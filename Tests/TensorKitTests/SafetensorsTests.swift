import Foundation
import Testing
import TensorKit

/// Builds safetensors bytes by hand: the 8-byte little-endian length, the header text, the data.
private func file(_ header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) -> [UInt8] {
    let headerBytes = Array(header.utf8)
    let length = declaredLength ?? UInt64(headerBytes.count)
    return (0..<8).map { UInt8(truncatingIfNeeded: length >> (8 * UInt64($0))) } + headerBytes + data
}

private func littleEndianBytes(_ values: [Float]) -> [UInt8] {
    values.flatMap { value in (0..<4).map { UInt8(truncatingIfNeeded: value.bitPattern >> (8 * UInt32($0))) } }
}

private func expectError(_ expected: SafetensorsError, _ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(throws: expected, sourceLocation: sourceLocation) { try SafetensorsFile(bytes: bytes) }
}

@Suite struct SafetensorsTests {
    @Test func encodesTheExactReferenceLayout() throws {
        // Expected bytes written out by hand from the format description: sorted names, compact
        // JSON, metadata first, header padded with spaces to a multiple of 8.
        let tensors = ["b": Tensor(shape: [2], storage: [1, -2]), "a": Tensor(shape: [1, 1], storage: [0.5])]
        let bytes = try Safetensors.encode(tensors, metadata: ["format": "pt"])
        let header = #"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[1,1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        let padded = header + String(repeating: " ", count: (8 - header.utf8.count % 8) % 8)
        #expect(bytes == file(padded, data: littleEndianBytes([0.5, 1, -2])))
        #expect((bytes.count - 12) % 8 == 0)
    }

    @Test(arguments: [0 as UInt64, 1, 2, 3])
    func roundTripsRandomTensorsAndMetadata(seed: UInt64) throws {
        var rng = SeededGenerator(seed: seed)
        var tensors: [String: Tensor] = [:]
        for k in 0..<Int(1 + rng.nextInt(below: 6)) {
            let shape = (0..<rng.nextInt(below: 4)).map { _ in rng.nextInt(below: 5) }
            tensors["layer\(k).weight"] = rng.normal(shape)
        }
        let metadata = ["grid": "\(seed)", "quote \" and \\ and\nnewline": "é ✓ \u{1}"]
        let parsed = try SafetensorsFile(bytes: try Safetensors.encode(tensors, metadata: metadata))
        #expect(parsed.metadata == metadata, "seed \(seed)")
        #expect(parsed.names == tensors.keys.sorted(), "seed \(seed)")
        for (name, tensor) in tensors {
            #expect(try parsed.tensor(named: name) == tensor, "seed \(seed), tensor \(name)")
        }
        // Determinism: the same input encodes to the same bytes.
        #expect(try Safetensors.encode(tensors, metadata: metadata) == Safetensors.encode(tensors, metadata: metadata))
    }

    @Test func writesAtomicallyAndReadsBack() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("safetensors-\(getpid())-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("model.safetensors").path
        let first = ["w": Tensor(shape: [3], storage: [1, 2, 3])]
        let second = ["w": Tensor(shape: [2], storage: [4, 5]), "v": Tensor(shape: [], storage: [7])]
        try Safetensors.write(first, metadata: ["epoch": "1"], toFile: path)
        try Safetensors.write(second, metadata: ["epoch": "2"], toFile: path)
        let loaded = try SafetensorsFile(contentsOfFile: path)
        // The data is v (one float) then w (two), little-endian; the writer adds its SHA-256.
        let data: [UInt8] = littleEndianBytes([7, 4, 5])
        #expect(loaded.metadata == ["epoch": "2", Safetensors.checksumKey: SHA256.hex(of: data)])
        #expect(loaded.data == data)
        #expect(try loaded.tensor(named: "w") == second["w"])
        #expect(try loaded.tensor(named: "v") == second["v"])
        // No temporary files are left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["model.safetensors"])
        #expect(throws: SafetensorsError.fileError(path: directory.path + "/absent", message: "No such file or directory")) {
            try SafetensorsFile(contentsOfFile: directory.path + "/absent")
        }
    }

    @Test func readsOtherDTypes() throws {
        // PyTorch's BatchNorm counter is an I64 scalar; the others cover each conversion with
        // values whose bit patterns are written out from IEEE 754 by hand.
        let header = #"{"n":{"dtype":"I64","shape":[],"data_offsets":[0,8]},"#
            + #""h":{"dtype":"F16","shape":[4],"data_offsets":[8,16]},"#
            + #""b":{"dtype":"BF16","shape":[2],"data_offsets":[16,20]},"#
            + #""d":{"dtype":"F64","shape":[1],"data_offsets":[20,28]},"#
            + #""i":{"dtype":"I32","shape":[2],"data_offsets":[28,36]}}"#
        var data: [UInt8] = [0x2A, 0x03, 0, 0, 0, 0, 0, 0]      // 810
        data += [0x00, 0x3C, 0x00, 0xC0, 0x01, 0x00, 0x00, 0x7C] // 1, -2, 2^-24, +inf
        data += [0x80, 0x3F, 0x49, 0x40]                         // 1, 3.140625
        data += [0, 0, 0, 0, 0, 0, 0xF8, 0x3F]                  // 1.5
        data += [0xFF, 0xFF, 0xFF, 0xFF, 0x07, 0, 0, 0]         // -1, 7
        let parsed = try SafetensorsFile(bytes: file(header, data: data))
        #expect(try parsed.integers(named: "n") == [810])
        #expect(try parsed.tensor(named: "n") == Tensor(shape: [], storage: [810]))
        #expect(try parsed.tensor(named: "h").storage == [1, -2, 0x1p-24, .infinity])
        #expect(try parsed.tensor(named: "b").storage == [1, 3.140625])
        #expect(try parsed.tensor(named: "d").storage == [1.5])
        #expect(try parsed.integers(named: "i") == [-1, 7])
        #expect(parsed.entries["i"]?.dtype == .int32)
        #expect(throws: SafetensorsError.dtypeMismatch(tensor: "h", expected: "an integer dtype", found: "F16")) {
            try parsed.integers(named: "h")
        }
    }

    @Test func strictLoadingNamesTheOffendingTensor() throws {
        let bytes = try Safetensors.encode([
            "conv.weight": Tensor(shape: [2, 1], storage: [1, 2]),
            "conv.bias": Tensor(shape: [2], storage: [3, 4]),
            "bn.num_batches_tracked": Tensor(shape: [], storage: [0]),
        ])
        let parsed = try SafetensorsFile(bytes: bytes)
        let ignoreCounter: (String) -> Bool = { $0.hasSuffix("num_batches_tracked") }
        let loaded = try parsed.tensors(expected: ["conv.weight": [2, 1], "conv.bias": [2]], ignoring: ignoreCounter)
        #expect(loaded["conv.bias"]?.storage == [3, 4])
        #expect(throws: SafetensorsError.missingTensor("fc.weight")) {
            try parsed.tensors(expected: ["conv.weight": [2, 1], "conv.bias": [2], "fc.weight": [1]], ignoring: ignoreCounter)
        }
        #expect(throws: SafetensorsError.unusedTensor("conv.bias")) {
            try parsed.tensors(expected: ["conv.weight": [2, 1]], ignoring: ignoreCounter)
        }
        #expect(throws: SafetensorsError.unusedTensor("bn.num_batches_tracked")) {
            try parsed.tensors(expected: ["conv.weight": [2, 1], "conv.bias": [2]])
        }
        #expect(throws: SafetensorsError.shapeMismatch(tensor: "conv.weight", expected: [1, 2], found: [2, 1])) {
            try parsed.tensors(expected: ["conv.weight": [1, 2], "conv.bias": [2]], ignoring: ignoreCounter)
        }
        let half = try SafetensorsFile(bytes: file(#"{"w":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}"#, data: [0, 0x3C]))
        #expect(throws: SafetensorsError.dtypeMismatch(tensor: "w", expected: "F32", found: "F16")) {
            try half.tensors(expected: ["w": [1]])
        }
    }

    @Test func writerRefusesReservedNames() {
        #expect(throws: SafetensorsError.invalidTensorName("__metadata__")) {
            try Safetensors.encode(["__metadata__": Tensor(shape: [1])])
        }
    }

    static let entry4 = #""dtype":"F32","shape":[1],"data_offsets":[0,4]"#
    static let malformed: [(String, [UInt8], SafetensorsError)] = [
        ("empty", [], .truncated(byteCount: 0)),
        ("seven bytes", [2, 0, 0, 0, 0, 0, 0], .truncated(byteCount: 7)),
        ("header longer than file", file("{}", declaredLength: 50), .headerTooLarge(declared: 50, available: 2)),
        ("absurd header length", file("{}", declaredLength: UInt64.max), .headerLengthExceedsLimit(declared: UInt64.max, limit: 100_000_000)),
        ("not JSON", file("{\"a\":}"), .invalidJSON("unexpected character at byte 5 of the header")),
        ("truncated JSON", file("{\"a\":{"), .invalidJSON("expected a string key at byte 6 of the header")),
        ("trailing garbage", file("{} x"), .invalidJSON("unexpected data after the JSON value at byte 3 of the header")),
        ("deep nesting", file(String(repeating: "[", count: 100)), .invalidJSON("nesting deeper than 64 at byte 64 of the header")),
        ("header is an array", file("[]"), .invalidHeader("the header is not a JSON object")),
        ("metadata not strings", file(#"{"__metadata__":{"a":1}}"#), .invalidHeader("__metadata__ value for 'a' is not a string")),
        ("unknown field", file(#"{"w":{"dtype":"F32","shape":[],"data_offsets":[0,4],"x":1}}"#, data: [0, 0, 0, 0]),
         .invalidHeader("entry 'w' has unknown field 'x'")),
        ("negative shape", file(#"{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]),
         .invalidHeader("shape of 'w' holds something other than a non-negative integer")),
        ("fractional offset", file(#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4.0]}}"#, data: [0, 0, 0, 0]),
         .invalidHeader("data_offsets of 'w' are not non-negative integers")),
        ("wrong dtype", file(#"{"w":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}}"#, data: [0]),
         .unsupportedDType(tensor: "w", dtype: "F8")),
        ("offsets past data", file(#"{"w":{"#  + entry4 + "}}", data: [0, 0]),
         .offsetsOutOfRange(tensor: "w", begin: 0, end: 4, dataLength: 2)),
        ("reversed offsets", file(#"{"w":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}}"#, data: [0, 0, 0, 0]),
         .offsetsOutOfRange(tensor: "w", begin: 4, end: 0, dataLength: 4)),
        ("overlap", file(#"{"a":{"# + entry4 + #"},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}"#, data: [UInt8](repeating: 0, count: 6)),
         .overlappingData(tensor: "a", other: "b")),
        ("same bytes twice", file(#"{"a":{"# + entry4 + #"},"b":{"# + entry4 + "}}", data: [0, 0, 0, 0]),
         .overlappingData(tensor: "a", other: "b")),
        ("gap between tensors", file(#"{"a":{"# + entry4 + #"},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#, data: [UInt8](repeating: 0, count: 12)),
         .uncoveredData(begin: 4, end: 8)),
        ("data after last tensor", file(#"{"a":{"# + entry4 + "}}", data: [UInt8](repeating: 0, count: 5)),
         .uncoveredData(begin: 4, end: 5)),
        ("shape and bytes disagree", file(#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]),
         .byteCountMismatch(tensor: "w", shape: [2], dtype: "F32", byteCount: 4)),
        ("element count overflows", file(#"{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]),
         .invalidHeader("shape of 'w' has too many elements")),
        ("duplicate names", file(#"{"w":{"# + entry4 + #"},"w":{"# + entry4 + "}}", data: [0, 0, 0, 0]),
         .duplicateTensor("w")),
        ("duplicate field", file(#"{"w":{"dtype":"F32","# + entry4 + "}}", data: [0, 0, 0, 0]),
         .invalidJSON("duplicate key \"dtype\" at byte 20 of the header")),
    ]

    @Test(arguments: malformed)
    func rejectsMalformedFiles(name: String, bytes: [UInt8], expected: SafetensorsError) {
        expectError(expected, bytes)
    }

    @Test func acceptsEmptyTensorsAndEscapedNames() throws {
        // Zero-element tensors take no bytes and may sit at any covered boundary.
        let parsed = try SafetensorsFile(bytes: file(
            #"{"e":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]},"\u00e9\n":{"# + Self.entry4 + "}}",
            data: littleEndianBytes([2.5])))
        #expect(try parsed.tensor(named: "e").shape == [0, 3])
        #expect(try parsed.tensor(named: "é\n").storage == [2.5])
    }
}
