import Foundation
import PuzzleService
import TensorKit
import Testing

@Suite("Stored puzzle binary format")
struct StoredPuzzleCodingTests {
    /// A puzzle whose every field holds distinct values (seeded), so a swapped field shows.
    static func puzzle(grid: Int, channels: Int, truth: Bool, seed: UInt64) -> StoredPuzzle {
        var generator = SeededGenerator(seed: seed)
        let n = grid * grid
        let pieces = Tensor(shape: [1, n, channels, 3, 2], storage: (0..<(n * channels * 6)).map { _ in Float.random(in: 0...1, using: &generator) })
        let scores = Tensor(shape: [n, n], storage: (0..<(n * n)).map { _ in Float.random(in: -50...50, using: &generator) })
        return StoredPuzzle(id: String(format: "%016llx", generator.next()), model: "mnist-\(grid)x\(grid) é", grid: grid,
                            pieces: pieces, scores: scores, permutation: generator.permutation(n),
                            confidence: (0..<n).map { _ in Float.random(in: 0...1, using: &generator) },
                            truth: truth ? generator.permutation(n) : nil, origin: "sample mnist \(seed)",
                            created: Date(timeIntervalSince1970: 1_700_000_000.123456))
    }

    static func same(_ a: StoredPuzzle, _ b: StoredPuzzle) -> Bool {
        a.id == b.id && a.model == b.model && a.grid == b.grid && a.pieces == b.pieces && a.scores == b.scores
            && a.permutation == b.permutation && a.confidence == b.confidence && a.truth == b.truth && a.origin == b.origin
            && a.created == b.created
    }

    @Test("every field round-trips exactly", arguments: [(1, 1, false), (2, 1, true), (3, 3, false), (5, 3, true)], [UInt64(1), 2])
    func roundTrip(shape: (grid: Int, channels: Int, truth: Bool), seed: UInt64) throws {
        let puzzle = Self.puzzle(grid: shape.grid, channels: shape.channels, truth: shape.truth, seed: seed)
        let bytes = puzzle.encoded()
        let n = shape.grid * shape.grid
        let expectedSize = 4 + 4 + 8 + 4 + 6 + puzzle.id.utf8.count + puzzle.model.utf8.count + puzzle.origin.utf8.count
            + (1 + 20 + 4 * n * shape.channels * 6) + (1 + 8 + 4 * n * n) + 8 * n + (shape.truth ? 4 * n : 0)
        #expect(bytes.count == expectedSize, "seed \(seed): the layout documented, nothing more")
        #expect(Array(bytes[0..<5]) == Array("JGSP".utf8) + [1])
        #expect(Self.same(try StoredPuzzle(encoded: bytes), puzzle), "seed \(seed)")
    }

    @Test("floats are little-endian IEEE 754 binary32")
    func littleEndian() {
        var puzzle = Self.puzzle(grid: 1, channels: 1, truth: false, seed: 3)
        puzzle.scores = Tensor(shape: [1, 1], storage: [1.0])
        let bytes = puzzle.encoded()
        let scoreOffset = bytes.count - 8 - 4 // then permutation (4) and confidence (4)
        #expect(Array(bytes[scoreOffset..<(scoreOffset + 4)]) == [0x00, 0x00, 0x80, 0x3f])
    }

    @Test("every truncation is an error, never a crash")
    func truncations() {
        let bytes = Self.puzzle(grid: 2, channels: 3, truth: true, seed: 4).encoded()
        for length in 0..<bytes.count {
            #expect(throws: PuzzleCodingError.self, "first \(length) bytes") { try StoredPuzzle(encoded: Array(bytes[0..<length])) }
        }
    }

    /// Byte offsets of version 1's fixed header.
    static func corrupted(_ change: (inout [UInt8]) -> Void) -> [UInt8] {
        var bytes = puzzle(grid: 2, channels: 1, truth: false, seed: 5).encoded()
        change(&bytes)
        return bytes
    }

    static func permutationOffset(_ bytes: [UInt8]) -> Int { bytes.count - 16 - 16 }

    static let corruptions: [(String, [UInt8], PuzzleCodingError)] = [
        ("foreign value", Array("{\"id\": 1}".utf8), .notAPuzzle),
        ("empty", [], .notAPuzzle),
        ("later version", corrupted { $0[4] = 2 }, .unsupportedVersion(2)),
        ("unknown flag", corrupted { $0[5] = 2 }, .invalidField("flags", reason: "unknown flags or reserved bytes set")),
        ("reserved byte", corrupted { $0[7] = 1 }, .invalidField("flags", reason: "unknown flags or reserved bytes set")),
        ("grid 0", corrupted { $0[16] = 0 }, .invalidField("grid", reason: "0 is outside 1...64")),
        ("grid 65", corrupted { $0[16] = 65 }, .invalidField("grid", reason: "65 is outside 1...64")),
        ("grid 3 for 4 pieces", corrupted { $0[16] = 3 }, .invalidField("pieces", reason: "shape [1, 4, 1, 3, 2] is not [1, 9, 1 or 3, height, width]")),
        ("huge id length", corrupted { $0[20] = 0xff; $0[21] = 0xff }, .truncated(field: "id")),
        ("repeated cell", corrupted { bytes in
            let offset = permutationOffset(bytes)
            for index in 0..<4 { bytes[offset + 4 * index] = 0; bytes[offset + 4 * index + 1] = 0 }
        }, .invalidField("permutation", reason: "not a permutation of 0..<4")),
        ("cell out of range", corrupted { bytes in bytes[permutationOffset(bytes)] = 9 },
         .invalidField("permutation", reason: "not a permutation of 0..<4")),
        ("a byte too many", corrupted { $0.append(0) }, .trailingBytes(1)),
        ("flag says truth but none follows", corrupted { $0[5] = 1 }, .truncated(field: "truth")),
    ]

    @Test("corrupt values are refused with the exact error", arguments: corruptions)
    func corrupt(name: String, bytes: [UInt8], expected: PuzzleCodingError) {
        #expect(throws: expected, "\(name)") { try StoredPuzzle(encoded: bytes) }
    }

    @Test("a tensor dimension larger than the bytes at hand is refused before allocating")
    func hugeDimension() {
        var bytes = Self.puzzle(grid: 1, channels: 1, truth: false, seed: 6).encoded()
        let idLength = Int(bytes[20])
        let modelStart = 22 + idLength
        let modelLength = Int(bytes[modelStart])
        let originStart = modelStart + 2 + modelLength
        let piecesStart = originStart + 2 + Int(bytes[originStart])
        for index in 0..<4 { bytes[piecesStart + 1 + 4 * 4 + index] = 0xff } // width 2³² − 1
        #expect(throws: PuzzleCodingError.truncated(field: "pieces")) { try StoredPuzzle(encoded: bytes) }
    }
}
