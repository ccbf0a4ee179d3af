import Foundation
import TensorKit

/// Why bytes are not a stored puzzle in the binary format of ``StoredPuzzle/encoded()``.
public enum PuzzleCodingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The bytes do not start with the format's magic `JGSP`.
    case notAPuzzle
    /// A later format than this build reads.
    case unsupportedVersion(UInt8)
    /// The bytes end inside `field`.
    case truncated(field: String)
    /// `field` holds a value no stored puzzle has.
    case invalidField(String, reason: String)
    /// Bytes follow the last field.
    case trailingBytes(Int)

    public var description: String {
        switch self {
        case .notAPuzzle: "not a stored puzzle (no JGSP magic)"
        case .unsupportedVersion(let version): "stored puzzle format version \(version) is not supported (this build reads 1)"
        case .truncated(let field): "stored puzzle truncated in \(field)"
        case .invalidField(let field, let reason): "stored puzzle field \(field) is invalid: \(reason)"
        case .trailingBytes(let count): "\(count) bytes follow the stored puzzle"
        }
    }
}

/// A compact, versioned binary form of a stored puzzle, for stores outside the process (Redis).
///
/// Layout of version 1 (every integer little-endian, every tensor element a little-endian
/// IEEE 754 `Float32`, so the bytes mean the same on every machine):
///
/// | bytes | field |
/// |---|---|
/// | 4 | magic `JGSP` |
/// | 1 | version (1) |
/// | 1 | flags: bit 0 = `truth` present; the other bits are 0 |
/// | 2 | reserved, 0 |
/// | 8 | `created`: seconds since 1970 as a `Float64` |
/// | 4 | `grid` (`n = grid²`) |
/// | 2 + k | `id`, `model`, `origin`: each a `UInt16` byte count then UTF-8 |
/// | 1 + 4r + 4m | `pieces`: rank `r` (5), the `r` dimensions `[1, n, C, ph, pw]` as `UInt32`, then `m` elements |
/// | 1 + 4r + 4m | `scores`: rank 2, `[n, n]`, elements |
/// | 4n | `permutation` (`UInt32`) |
/// | 4n | `confidence` (`Float32`) |
/// | 4n | `truth` (`UInt32`), when flagged |
///
/// Reading validates everything a route relies on (shapes agree with the grid, permutations are
/// permutations, no byte is left over) and checks every length against the bytes at hand before
/// allocating, so a corrupt or foreign value is an error and never a crash or a huge allocation.
extension StoredPuzzle {
    /// The format's first four bytes.
    static let magic: [UInt8] = Array("JGSP".utf8)
    /// The version written.
    static let formatVersion: UInt8 = 1
    /// The largest grid read back (a 64 × 64 puzzle has 4096 pieces, far beyond any model).
    static let maximumEncodedGrid = 64

    /// The puzzle in the binary format described above.
    public func encoded() -> [UInt8] {
        var writer = Writer()
        writer.bytes.reserveCapacity(64 + id.utf8.count + model.utf8.count + origin.utf8.count
                                     + 4 * (pieces.count + scores.count + 3 * permutation.count) + 16)
        writer.bytes += Self.magic
        writer.bytes += [Self.formatVersion, truth == nil ? 0 : 1, 0, 0]
        writer.integer(created.timeIntervalSince1970.bitPattern)
        writer.integer(UInt32(grid))
        for text in [id, model, origin] {
            let utf8 = Array(text.utf8.prefix(Int(UInt16.max)))
            writer.integer(UInt16(utf8.count))
            writer.bytes += utf8
        }
        for tensor in [pieces, scores] {
            writer.bytes.append(UInt8(tensor.rank))
            for dimension in tensor.shape { writer.integer(UInt32(dimension)) }
            writer.floats(tensor.storage)
        }
        for value in permutation { writer.integer(UInt32(value)) }
        writer.floats(confidence)
        for value in truth ?? [] { writer.integer(UInt32(value)) }
        return writer.bytes
    }

    /// Reads a puzzle written by ``encoded()``.
    ///
    /// - Throws: `PuzzleCodingError` naming the first field that is missing or wrong.
    public init(encoded bytes: [UInt8]) throws(PuzzleCodingError) {
        var reader = Reader(bytes: bytes)
        guard bytes.count >= 4, Array(bytes[0..<4]) == Self.magic else { throw .notAPuzzle }
        reader.offset = 4
        let header = Array(try reader.take(4, field: "header"))
        guard header[0] == Self.formatVersion else { throw .unsupportedVersion(header[0]) }
        guard header[1] & ~1 == 0, header[2] == 0, header[3] == 0 else {
            throw .invalidField("flags", reason: "unknown flags or reserved bytes set")
        }
        let hasTruth = header[1] & 1 == 1
        let seconds = Double(bitPattern: try reader.integer(UInt64.self, field: "created"))
        guard seconds.isFinite else { throw .invalidField("created", reason: "not a finite time") }
        let grid = Int(try reader.integer(UInt32.self, field: "grid"))
        guard (1...Self.maximumEncodedGrid).contains(grid) else {
            throw .invalidField("grid", reason: "\(grid) is outside 1...\(Self.maximumEncodedGrid)")
        }
        let n = grid * grid
        let id = try reader.string(field: "id")
        guard !id.isEmpty else { throw .invalidField("id", reason: "empty") }
        let model = try reader.string(field: "model")
        let origin = try reader.string(field: "origin")
        let pieces = try reader.tensor(field: "pieces")
        guard pieces.rank == 5, pieces.shape[0] == 1, pieces.shape[1] == n, [1, 3].contains(pieces.shape[2]),
              pieces.shape[3] >= 1, pieces.shape[4] >= 1 else {
            throw .invalidField("pieces", reason: "shape \(pieces.shape) is not [1, \(n), 1 or 3, height, width]")
        }
        let scores = try reader.tensor(field: "scores")
        guard scores.shape == [n, n] else { throw .invalidField("scores", reason: "shape \(scores.shape) is not [\(n), \(n)]") }
        let permutation = try reader.permutation(count: n, field: "permutation")
        let confidence = try reader.floats(count: n, field: "confidence")
        let truth = hasTruth ? try reader.permutation(count: n, field: "truth") : nil
        guard reader.offset == bytes.count else { throw .trailingBytes(bytes.count - reader.offset) }
        self.init(id: id, model: model, grid: grid, pieces: pieces, scores: scores, permutation: permutation,
                  confidence: confidence, truth: truth, origin: origin, created: Date(timeIntervalSince1970: seconds))
    }

    private struct Writer {
        var bytes: [UInt8] = []

        mutating func integer<Value: FixedWidthInteger>(_ value: Value) {
            withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
        }

        mutating func floats(_ values: [Float]) {
            #if _endian(little)
            values.withUnsafeBytes { bytes.append(contentsOf: $0) }
            #else
            for value in values { integer(value.bitPattern) }
            #endif
        }
    }

    private struct Reader {
        let bytes: [UInt8]
        var offset = 0

        mutating func take(_ count: Int, field: String) throws(PuzzleCodingError) -> ArraySlice<UInt8> {
            guard count >= 0, bytes.count - offset >= count else { throw .truncated(field: field) }
            defer { offset += count }
            return bytes[offset..<(offset + count)]
        }

        mutating func integer<Value: FixedWidthInteger>(_ type: Value.Type, field: String) throws(PuzzleCodingError) -> Value {
            let slice = try take(MemoryLayout<Value>.size, field: field)
            return slice.reversed().reduce(Value.zero) { $0 << 8 | Value($1) }
        }

        mutating func string(field: String) throws(PuzzleCodingError) -> String {
            let count = Int(try integer(UInt16.self, field: field))
            guard let text = String(validating: try take(count, field: field), as: UTF8.self) else {
                throw .invalidField(field, reason: "not UTF-8")
            }
            return text
        }

        mutating func floats(count: Int, field: String) throws(PuzzleCodingError) -> [Float] {
            guard count <= (bytes.count - offset) / 4 else { throw .truncated(field: field) }
            let slice = try take(4 * count, field: field)
            var values = [Float](repeating: 0, count: count)
            values.withUnsafeMutableBytes { target in
                slice.withUnsafeBytes { target.copyMemory(from: $0) }
            }
            #if !_endian(little)
            for index in values.indices { values[index] = Float(bitPattern: UInt32(littleEndian: values[index].bitPattern)) }
            #endif
            return values
        }

        mutating func tensor(field: String) throws(PuzzleCodingError) -> Tensor {
            let rank = Int(try take(1, field: field).first ?? 0)
            guard (1...8).contains(rank) else { throw .invalidField(field, reason: "rank \(rank)") }
            var shape: [Int] = []
            var count = 1
            for _ in 0..<rank {
                let dimension = Int(try integer(UInt32.self, field: field))
                let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
                // Checked against the bytes left before anything is allocated.
                guard !overflow, product <= (bytes.count - offset) / 4 else { throw .truncated(field: field) }
                shape.append(dimension)
                count = product
            }
            return Tensor(shape: shape, storage: try floats(count: count, field: field))
        }

        mutating func permutation(count: Int, field: String) throws(PuzzleCodingError) -> [Int] {
            var seen = [Bool](repeating: false, count: count)
            var values: [Int] = []
            values.reserveCapacity(count)
            for _ in 0..<count {
                let value = Int(try integer(UInt32.self, field: field))
                guard value < count, !seen[value] else { throw .invalidField(field, reason: "not a permutation of 0..<\(count)") }
                seen[value] = true
                values.append(value)
            }
            return values
        }
    }
}
