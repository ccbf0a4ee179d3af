import Foundation
import TensorKit

/// A solved puzzle as the store keeps it: enough to answer every `/v1/puzzles/{id}` route,
/// including soft reconstructions at any temperature (recomputed from `scores`).
public struct StoredPuzzle: Sendable {
    /// The opaque id of the puzzle's URLs.
    public var id: String
    /// The model that scored it.
    public var model: String
    /// Pieces per side.
    public var grid: Int
    /// The scrambled pieces `[1, n, C, ph, pw]` with values in [0, 1], at display resolution
    /// (C = 1 for gray input, 3 otherwise).
    public var pieces: Tensor
    /// The network's scores `X` `[n, n]`: row `i` scores scrambled piece `i` over the cells.
    public var scores: Tensor
    /// The matching `M(X)`: `permutation[i]` is the cell of scrambled piece `i`.
    public var permutation: [Int]
    /// `S(X/τ)[i, permutation[i]]` at the confidence temperature.
    public var confidence: [Float]
    /// The correct permutation when the service made the puzzle itself (samples).
    public var truth: [Int]?
    /// What the puzzle was made from (`upload`, `pieces`, `sample mnist 7`).
    public var origin: String
    /// When it was stored.
    public var created: Date

    public init(id: String, model: String, grid: Int, pieces: Tensor, scores: Tensor, permutation: [Int],
                confidence: [Float], truth: [Int]? = nil, origin: String, created: Date = Date()) {
        self.id = id
        self.model = model
        self.grid = grid
        self.pieces = pieces
        self.scores = scores
        self.permutation = permutation
        self.confidence = confidence
        self.truth = truth
        self.origin = origin
        self.created = created
    }

    /// The bytes the entry holds, for the store's budget.
    public var byteCount: Int {
        256 + id.utf8.count + model.utf8.count + origin.utf8.count
            + 4 * (pieces.count + scores.count + confidence.count) + 8 * (permutation.count + (truth?.count ?? 0))
    }
}

/// A bounded in-memory store of solved puzzles: least recently used entries are evicted when
/// the entry count or the byte budget is exceeded, and an entry expires `timeToLive` after it
/// was stored. Safe to use from any thread. The default ``PuzzleStoring``: it never fails.
///
/// - Complexity: O(1) lookups and inserts (a hash map over a doubly linked recency list),
///   amortised over evictions.
public final class PuzzleStore: PuzzleStoring, @unchecked Sendable {
    // Thread safety: every mutable property is touched only with `lock` held.
    private final class Node {
        var puzzle: StoredPuzzle
        let bytes: Int
        let expires: UInt64
        var newer: Node?
        weak var older: Node?
        init(puzzle: StoredPuzzle, bytes: Int, expires: UInt64) {
            self.puzzle = puzzle
            self.bytes = bytes
            self.expires = expires
        }
    }

    /// Most entries kept.
    public let capacity: Int
    /// Most bytes kept (an entry larger than this on its own is still kept alone).
    public let byteBudget: Int
    /// How long an entry lives after it was stored.
    public let timeToLive: Duration

    private let lock = NSLock()
    private let clock: @Sendable () -> UInt64
    private var nodes: [String: Node] = [:]
    /// The least recently used entry; `older` pointers lead towards it.
    private var oldest: Node?
    /// The most recently used entry (strong chain runs from `oldest` through `newer`).
    private weak var newest: Node?
    private var totalBytes = 0
    private var evictionCount = 0
    private var expiryCount = 0

    /// Creates an empty store.
    ///
    /// - Parameters:
    ///   - capacity: most entries, at least 1.
    ///   - byteBudget: most bytes, at least 1.
    ///   - timeToLive: lifetime of an entry.
    ///   - clock: monotonic nanoseconds; injectable so tests can move time.
    public init(capacity: Int, byteBudget: Int, timeToLive: Duration,
                clock: @escaping @Sendable () -> UInt64 = { DispatchTime.now().uptimeNanoseconds }) {
        precondition(capacity >= 1 && byteBudget >= 1, "store bounds must be positive")
        self.capacity = capacity
        self.byteBudget = byteBudget
        self.timeToLive = timeToLive
        self.clock = clock
    }

    /// Stores a puzzle (replacing one with the same id) and evicts what no longer fits.
    public func insert(_ puzzle: StoredPuzzle) {
        let (seconds, attoseconds) = timeToLive.components
        let lifetime = UInt64(max(0, seconds)) &* 1_000_000_000 &+ UInt64(max(0, attoseconds) / 1_000_000_000)
        lock.withLock {
            let now = clock()
            if let existing = nodes[puzzle.id] { remove(existing) }
            let node = Node(puzzle: puzzle, bytes: puzzle.byteCount, expires: now &+ lifetime)
            append(node)
            while let victim = oldest, victim !== node, nodes.count > capacity || totalBytes > byteBudget {
                remove(victim)
                evictionCount += 1
            }
            while let victim = oldest, victim.expires <= now {
                remove(victim)
                expiryCount += 1
            }
        }
    }

    /// The puzzle with this id, marked as recently used; `nil` if absent or expired.
    public func puzzle(id: String) -> StoredPuzzle? {
        lock.withLock {
            guard let node = nodes[id] else { return nil }
            if node.expires <= clock() {
                remove(node)
                expiryCount += 1
                return nil
            }
            remove(node)
            append(node)
            return node.puzzle
        }
    }

    public typealias Statistics = PuzzleStoreStatistics

    /// `memory`.
    public var name: String { "memory" }

    /// Always available.
    public func checkAvailability() {}

    /// The current counters.
    public var statistics: Statistics {
        lock.withLock { Statistics(entries: nodes.count, bytes: totalBytes, evictions: evictionCount, expirations: expiryCount) }
    }

    private func append(_ node: Node) {
        nodes[node.puzzle.id] = node
        totalBytes += node.bytes
        node.older = newest
        node.newer = nil
        if let newest { newest.newer = node } else { oldest = node }
        newest = node
    }

    private func remove(_ node: Node) {
        nodes[node.puzzle.id] = nil
        totalBytes -= node.bytes
        let (older, newer) = (node.older, node.newer)
        if let newer { newer.older = older } else { newest = older }
        if let older { older.newer = newer } else { oldest = newer }
        node.newer = nil
        node.older = nil
    }
}
