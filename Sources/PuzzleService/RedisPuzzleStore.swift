import Foundation
import RESP

/// Solved puzzles kept in Redis, so that every replica behind a load balancer answers for the
/// puzzles any of them solved.
///
/// A puzzle is one string value, ``StoredPuzzle/encoded()``, under `keyPrefix + id`, written
/// with `SET key value PX ttl` (the same time to live as the in-memory store; reading does not
/// extend it, as in memory). Bounds:
///
/// - per entry: a puzzle whose encoding exceeds `maximumEntryBytes` is not stored;
/// - in total: Redis' own `maxmemory` with an LRU policy (`allkeys-lru`, or `volatile-lru`
///   when the database holds other keys that must stay; every puzzle key has a TTL) evicts the
///   least recently read puzzles — Redis updates a key's recency on every `GET`. The entry
///   count bound of the memory store has no Redis counterpart.
///
/// Failures: an unreachable, slow or misbehaving server makes a call throw
/// ``PuzzleStoreError/unavailable(store:reason:)`` within the pool's timeouts (see
/// ``RedisConnectionPool``), and the next call after the retry delay tries again, so the store
/// recovers by itself when Redis comes back. A value under a puzzle key that does not decode
/// (or is another kind of value) is answered as missing and counted. Changes of availability are
/// reported once each to `log`.
public final class RedisPuzzleStore: PuzzleStoring, @unchecked Sendable {
    // Thread safety: `state` is a `Locked`; the pool is thread-safe.
    public let pool: RedisConnectionPool
    public let keyPrefix: String
    public let timeToLive: Duration
    public let maximumEntryBytes: Int
    private let log: (@Sendable (String) -> Void)?
    private let state = Locked(State())

    private struct State {
        var failures = 0
        var corrupt = 0
        var available = true
    }

    /// The longest id looked up; longer ones are no ids this service made, so they are missing
    /// without a round trip.
    static let maximumIdentifierLength = 128

    /// Creates the store; nothing connects until the first call.
    ///
    /// - Parameters:
    ///   - endpoint: the Redis server.
    ///   - timeToLive: lifetime of a puzzle, at least 1 ms.
    ///   - maximumEntryBytes: the largest encoded puzzle stored.
    ///   - keyPrefix: the namespace of the keys (several services can share one database).
    ///   - timeouts: connect, command and retry delays.
    ///   - connections: most connections in use at once.
    ///   - log: receives a line when the store becomes unavailable and when it recovers.
    public init(endpoint: RedisEndpoint, timeToLive: Duration, maximumEntryBytes: Int = 16 << 20,
                keyPrefix: String = "jigsaw:puzzle:", timeouts: RedisTimeouts = RedisTimeouts(), connections: Int = 8,
                log: (@Sendable (String) -> Void)? = nil) {
        precondition(maximumEntryBytes >= 1, "the entry limit must be positive")
        pool = RedisConnectionPool(endpoint: endpoint, timeouts: timeouts, capacity: connections,
                                   limits: RESPParser.Limits(bulkBytes: maximumEntryBytes))
        self.keyPrefix = keyPrefix
        self.timeToLive = timeToLive
        self.maximumEntryBytes = maximumEntryBytes
        self.log = log
    }

    public var name: String { pool.endpoint.description }

    /// The key of a puzzle.
    public func key(id: String) -> String { keyPrefix + id }

    public func insert(_ puzzle: StoredPuzzle) throws(PuzzleStoreError) {
        let value = puzzle.encoded()
        guard value.count <= maximumEntryBytes else {
            throw .entryTooLarge(id: puzzle.id, bytes: value.count, limit: maximumEntryBytes)
        }
        let (seconds, attoseconds) = timeToLive.components
        let milliseconds = max(1, seconds * 1000 + attoseconds / 1_000_000_000_000_000)
        let reply = try run { () throws(RedisError) in
            try pool.send([Array("SET".utf8), Array(key(id: puzzle.id).utf8), value, Array("PX".utf8), Array(String(milliseconds).utf8)])
        }
        guard reply == .simpleString("OK") else { throw unavailable("unexpected reply to SET: \(reply)") }
    }

    public func puzzle(id: String) throws(PuzzleStoreError) -> StoredPuzzle? {
        guard !id.isEmpty, id.utf8.count <= Self.maximumIdentifierLength else { return nil }
        let reply = try run { () throws(RedisError) -> RESPValue in
            do throws(RedisError) {
                return try pool.send([Array("GET".utf8), Array(key(id: id).utf8)])
            } catch {
                // Another kind of value under a puzzle key is foreign data, not an outage.
                if case RedisError.serverError(let message) = error, message.hasPrefix("WRONGTYPE") { return .bulkString([]) }
                throw error
            }
        }
        switch reply {
        case .null:
            return nil
        case .bulkString(let bytes):
            guard let puzzle = try? StoredPuzzle(encoded: bytes), puzzle.id == id else {
                state.update { $0.corrupt += 1 }
                return nil
            }
            return puzzle
        default:
            throw unavailable("unexpected reply to GET: \(reply)")
        }
    }

    public func checkAvailability() throws(PuzzleStoreError) {
        _ = try run { () throws(RedisError) in try pool.ping() }
    }

    public var statistics: PuzzleStoreStatistics {
        let state = state.value
        return PuzzleStoreStatistics(entries: nil, bytes: nil, failures: state.failures, corruptEntries: state.corrupt)
    }

    /// Runs a command, translating its failure into `unavailable` and reporting changes of
    /// availability.
    private func run<Result>(_ body: () throws(RedisError) -> Result) throws(PuzzleStoreError) -> Result {
        do {
            let result = try body()
            let recovered = state.update { state in
                defer { state.available = true }
                return !state.available
            }
            if recovered { log?("puzzle store \(name): available again") }
            return result
        } catch {
            throw unavailable(error.description)
        }
    }

    private func unavailable(_ reason: String) -> PuzzleStoreError {
        let first = state.update { state in
            state.failures += 1
            defer { state.available = false }
            return state.available
        }
        if first { log?("puzzle store \(name): unavailable: \(reason)") }
        return .unavailable(store: name, reason: reason)
    }
}
