import Foundation
import PuzzleService
import TensorKit
import Testing

@Suite("Puzzle store")
struct PuzzleStoreTests {
    /// A clock tests move by hand.
    final class ManualClock: @unchecked Sendable {
        private let lock = NSLock()
        private var nanoseconds: UInt64 = 1_000
        var now: UInt64 { lock.withLock { nanoseconds } }
        func advance(seconds: Double) { lock.withLock { nanoseconds += UInt64(seconds * 1e9) } }
    }

    static func puzzle(_ id: String, pieceValues: Int = 16) -> StoredPuzzle {
        StoredPuzzle(id: id, model: "m", grid: 2, pieces: Tensor(shape: [1, 4, 1, 1, pieceValues / 4]),
                     scores: Tensor(shape: [4, 4]), permutation: [0, 1, 2, 3], confidence: [1, 1, 1, 1], origin: "test")
    }

    @Test("the least recently used puzzle is evicted at capacity")
    func leastRecentlyUsed() {
        let store = PuzzleStore(capacity: 3, byteBudget: 1 << 30, timeToLive: .seconds(60))
        for id in ["a", "b", "c"] { store.insert(Self.puzzle(id)) }
        #expect(store.puzzle(id: "a") != nil) // a is now the most recent; b the least
        store.insert(Self.puzzle("d"))
        #expect(store.puzzle(id: "b") == nil)
        #expect(["a", "c", "d"].allSatisfy { store.puzzle(id: $0) != nil })
        #expect(store.statistics.entries == 3 && store.statistics.evictions == 1)
        store.insert(Self.puzzle("c")) // replacing keeps one entry per id
        #expect(store.statistics.entries == 3)
    }

    @Test("the byte budget evicts oldest first, and a single oversized puzzle is kept alone")
    func byteBudget() {
        let size = Self.puzzle("x").byteCount
        let store = PuzzleStore(capacity: 100, byteBudget: 2 * size + size / 2, timeToLive: .seconds(60))
        for id in ["a", "b", "c"] { store.insert(Self.puzzle(id)) }
        #expect(store.puzzle(id: "a") == nil && store.puzzle(id: "b") != nil && store.puzzle(id: "c") != nil)
        #expect(store.statistics.bytes == 2 * size)
        store.insert(Self.puzzle("big", pieceValues: 4 * 10_000))
        #expect(store.statistics.entries == 1 && store.puzzle(id: "big") != nil)
    }

    @Test("a puzzle expires its time to live after it was stored")
    func timeToLive() {
        let clock = ManualClock()
        let store = PuzzleStore(capacity: 10, byteBudget: 1 << 30, timeToLive: .seconds(30), clock: { clock.now })
        store.insert(Self.puzzle("a"))
        clock.advance(seconds: 20)
        store.insert(Self.puzzle("b"))
        #expect(store.puzzle(id: "a") != nil, "reading does not extend the lifetime")
        clock.advance(seconds: 11)
        #expect(store.puzzle(id: "a") == nil)
        #expect(store.puzzle(id: "b") != nil)
        clock.advance(seconds: 20)
        store.insert(Self.puzzle("c")) // expired entries are also purged on insert
        #expect(store.statistics.entries == 1 && store.statistics.expirations == 2)
    }
}
