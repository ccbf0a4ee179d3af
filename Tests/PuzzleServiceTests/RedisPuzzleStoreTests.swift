import Foundation
import Glibc
import PuzzleService
import RESP
import TensorKit
import Testing
import TestSupport

/// Against a real `redis-server` started for each test on a free loopback port.
@Suite("Redis puzzle store", .enabled(if: RedisServer.executable != nil, Comment(rawValue: RedisServer.skipReason)))
struct RedisPuzzleStoreTests {
    static let timeouts = RedisTimeouts(connect: .milliseconds(250), operation: .milliseconds(500), retryDelay: .milliseconds(100))

    static func store(_ server: RedisServer, timeToLive: Duration = .seconds(60), maximumEntryBytes: Int = 1 << 20) -> RedisPuzzleStore {
        RedisPuzzleStore(endpoint: RedisEndpoint(host: "127.0.0.1", port: server.port), timeToLive: timeToLive,
                         maximumEntryBytes: maximumEntryBytes, timeouts: timeouts)
    }

    @Test("a puzzle round-trips through Redis, with the key and TTL documented")
    func roundTrip() throws {
        let server = try RedisServer()
        let store = Self.store(server, timeToLive: .seconds(90))
        let puzzle = StoredPuzzleCodingTests.puzzle(grid: 3, channels: 3, truth: true, seed: 11)
        try store.insert(puzzle)
        let read = try #require(try store.puzzle(id: puzzle.id))
        #expect(StoredPuzzleCodingTests.same(read, puzzle))
        #expect(try store.puzzle(id: "0123456789abcdef") == nil)
        #expect(try store.puzzle(id: String(repeating: "x", count: 1000)) == nil)
        let ttl = try store.pool.send("PTTL", "jigsaw:puzzle:" + puzzle.id)
        guard case .integer(let milliseconds) = ttl else { Issue.record("PTTL answered \(ttl)"); return }
        #expect(milliseconds > 80_000 && milliseconds <= 90_000)
        #expect(store.statistics == PuzzleStoreStatistics(entries: nil, bytes: nil))
        try store.checkAvailability()
    }

    @Test("a puzzle expires after the store's time to live")
    func expiry() throws {
        let server = try RedisServer()
        let store = Self.store(server, timeToLive: .milliseconds(150))
        let puzzle = StoredPuzzleCodingTests.puzzle(grid: 2, channels: 1, truth: false, seed: 12)
        try store.insert(puzzle)
        #expect(try store.puzzle(id: puzzle.id) != nil)
        let start = Date()
        var gone = false
        while !gone, Date().timeIntervalSince(start) < 3 {
            gone = try store.puzzle(id: puzzle.id) == nil
            if !gone { usleep(20_000) }
        }
        #expect(gone)
        #expect(Date().timeIntervalSince(start) >= 0.1, "not before its time to live")
    }

    @Test("a corrupt or foreign value under a puzzle key is answered as missing and counted")
    func corruptValues() throws {
        let server = try RedisServer()
        let store = Self.store(server)
        #expect(try store.pool.send("SET", "jigsaw:puzzle:aaaa", "not a puzzle") == .simpleString("OK"))
        #expect(try store.puzzle(id: "aaaa") == nil)
        // A valid puzzle stored under another id's key is not that puzzle.
        let puzzle = StoredPuzzleCodingTests.puzzle(grid: 2, channels: 1, truth: false, seed: 13)
        _ = try store.pool.send([Array("SET".utf8), Array("jigsaw:puzzle:bbbb".utf8), puzzle.encoded()])
        #expect(try store.puzzle(id: "bbbb") == nil)
        #expect(try store.pool.send("LPUSH", "jigsaw:puzzle:cccc", "x") == .integer(1))
        #expect(try store.puzzle(id: "cccc") == nil)
        #expect(store.statistics.corruptEntries == 3 && store.statistics.failures == 0)
    }

    @Test("a puzzle above the per-entry limit is refused without a round trip")
    func entryLimit() throws {
        let server = try RedisServer()
        let store = Self.store(server, maximumEntryBytes: 256)
        let puzzle = StoredPuzzleCodingTests.puzzle(grid: 3, channels: 3, truth: false, seed: 14)
        #expect(throws: PuzzleStoreError.entryTooLarge(id: puzzle.id, bytes: puzzle.encoded().count, limit: 256)) {
            try store.insert(puzzle)
        }
    }

    @Test("Redis down: every call fails fast with unavailable; Redis back: the store recovers")
    func downAndBack() throws {
        let server = try RedisServer()
        let lines = LogLines()
        let store = RedisPuzzleStore(endpoint: RedisEndpoint(host: "127.0.0.1", port: server.port), timeToLive: .seconds(60),
                                     timeouts: Self.timeouts, log: { lines.append($0) })
        let puzzle = StoredPuzzleCodingTests.puzzle(grid: 2, channels: 1, truth: false, seed: 15)
        try store.insert(puzzle)
        server.kill()
        let start = Date()
        for _ in 0..<20 {
            #expect { try store.insert(puzzle) } throws: { error in
                guard case PuzzleStoreError.unavailable(let name, _) = error else { return false }
                return name == "redis://127.0.0.1:\(server.port)/0"
            }
            #expect(throws: PuzzleStoreError.self) { try store.puzzle(id: puzzle.id) }
        }
        #expect(Date().timeIntervalSince(start) < 1, "40 calls on a down Redis take no waiting")
        #expect(throws: PuzzleStoreError.self) { try store.checkAvailability() }
        #expect(store.statistics.failures >= 41)
        try server.start()
        let deadline = Date().addingTimeInterval(5)
        var recovered = false
        while !recovered, Date() < deadline {
            recovered = (try? store.insert(puzzle)) != nil
            if !recovered { usleep(20_000) }
        }
        #expect(recovered)
        #expect(try store.puzzle(id: puzzle.id) != nil)
        #expect(lines.value.count == 2, "one line when it went down, one when it came back: \(lines.value)")
    }

    @Test("Redis slow (stopped): calls fail within the operation timeout, never hang; resumed: the store recovers")
    func slowRedis() throws {
        let server = try RedisServer()
        let store = Self.store(server)
        let puzzle = StoredPuzzleCodingTests.puzzle(grid: 2, channels: 1, truth: false, seed: 16)
        try store.insert(puzzle)
        server.pause(true)
        defer { server.pause(false) }
        var start = Date()
        #expect { try store.puzzle(id: puzzle.id) } throws: { error in
            guard case PuzzleStoreError.unavailable(_, let reason) = error else { return false }
            return reason.contains("did not answer within 500 ms")
        }
        var elapsed = Date().timeIntervalSince(start)
        #expect(elapsed >= 0.45 && elapsed < 1.5, "\(elapsed) s: bounded by the 500 ms operation timeout")
        start = Date()
        #expect(throws: PuzzleStoreError.self) { try store.insert(puzzle) }
        elapsed = Date().timeIntervalSince(start)
        #expect(elapsed < 1.5, "\(elapsed) s")
        server.pause(false)
        let deadline = Date().addingTimeInterval(5)
        var recovered: StoredPuzzle?
        while recovered == nil, Date() < deadline {
            recovered = try? store.puzzle(id: puzzle.id)
            if recovered == nil { usleep(20_000) }
        }
        #expect(recovered != nil, "the puzzle stored before the stall is read again")
    }
}

final class LogLines: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    var value: [String] { lock.withLock { lines } }
    func append(_ line: String) { lock.withLock { lines.append(line) } }
}
