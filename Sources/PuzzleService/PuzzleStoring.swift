/// Where solved puzzles are kept between the solve and the requests for their images and soft
/// reconstructions. The service depends on this protocol only.
///
/// Two stores conform: ``PuzzleStore`` (in memory, the default, never fails) and
/// ``RedisPuzzleStore`` (shared by replicas; fails with ``PuzzleStoreError/unavailable(store:reason:)``
/// when Redis is down or slow). Every implementation bounds the time a call takes.
public protocol PuzzleStoring: Sendable {
    /// What the store is, for messages and `/readyz` (`memory`, `redis://host:6379/0`).
    var name: String { get }

    /// Stores a puzzle under its id, replacing one with the same id, with the store's time to live.
    ///
    /// - Throws: `PuzzleStoreError` when the puzzle could not be stored.
    func insert(_ puzzle: StoredPuzzle) throws(PuzzleStoreError)

    /// The puzzle with this id, or `nil` when it is unknown, expired, evicted or unreadable.
    ///
    /// - Throws: `PuzzleStoreError.unavailable` when the store cannot answer.
    func puzzle(id: String) throws(PuzzleStoreError) -> StoredPuzzle?

    /// Checks the store answers now (for `/readyz`).
    ///
    /// - Throws: `PuzzleStoreError.unavailable` when it does not.
    func checkAvailability() throws(PuzzleStoreError)

    /// Counters for `/metrics`.
    var statistics: PuzzleStoreStatistics { get }
}

/// Why a store call failed.
public enum PuzzleStoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The store cannot be reached or did not answer in time; `reason` says which. → 503
    /// `store_unavailable` with `Retry-After`.
    case unavailable(store: String, reason: String)
    /// The puzzle's encoding exceeds the store's per-entry limit; it is not stored.
    case entryTooLarge(id: String, bytes: Int, limit: Int)

    public var description: String {
        switch self {
        case .unavailable(let store, let reason):
            "the puzzle store is unavailable: \(reason.contains(store) ? reason : "\(store): \(reason)")"
        case .entryTooLarge(let id, let bytes, let limit):
            "puzzle \(id) takes \(bytes) bytes, more than the store's limit of \(limit) bytes per puzzle"
        }
    }
}

/// A store's counters for `/metrics`.
public struct PuzzleStoreStatistics: Sendable, Equatable {
    /// Puzzles held, when the store knows it (a shared store does not, cheaply).
    public var entries: Int?
    /// Bytes held, when the store knows it.
    public var bytes: Int?
    /// Puzzles evicted by the store's bounds (those this process sees).
    public var evictions: Int
    /// Puzzles dropped after their time to live (those this process sees).
    public var expirations: Int
    /// Calls that failed because the store was unavailable.
    public var failures: Int
    /// Stored values that could not be read back as puzzles (answered as missing).
    public var corruptEntries: Int

    public init(entries: Int?, bytes: Int?, evictions: Int = 0, expirations: Int = 0, failures: Int = 0, corruptEntries: Int = 0) {
        self.entries = entries
        self.bytes = bytes
        self.evictions = evictions
        self.expirations = expirations
        self.failures = failures
        self.corruptEntries = corruptEntries
    }
}
