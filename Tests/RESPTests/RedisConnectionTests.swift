import Foundation
import Glibc
import RESP
import Sockets
import Testing
import TestSupport

/// Against a real `redis-server` started for each test on a free loopback port.
@Suite("Redis connections", .enabled(if: RedisServer.executable != nil, Comment(rawValue: RedisServer.skipReason)))
struct RedisConnectionTests {
    static let fast = RedisTimeouts(connect: .milliseconds(250), operation: .milliseconds(500), retryDelay: .milliseconds(100))

    @Test("binary values round-trip; error replies leave the connection usable")
    func roundTrip() throws {
        let server = try RedisServer()
        let connection = try RedisConnection(endpoint: RedisEndpoint(host: "127.0.0.1", port: server.port))
        let value: [UInt8] = [0, 13, 10, 255] + (0..<(1 << 20)).map { UInt8($0 % 251) }
        #expect(try connection.send([Array("SET".utf8), Array("k".utf8), value]) == .simpleString("OK"))
        #expect(try connection.send("GET", "k") == .bulkString(value))
        #expect(try connection.send("GET", "missing") == .null)
        #expect(try connection.send("INCR", "n") == .integer(1))
        #expect(throws: RedisError.serverError("WRONGTYPE Operation against a key holding the wrong kind of value")) {
            try connection.send("LPUSH", "k", "x")
        }
        #expect(!connection.isBroken)
        #expect(try connection.send("PING") == .simpleString("PONG"))
    }

    @Test("AUTH and SELECT come from the URL; a wrong password is a server error")
    func authenticationAndDatabase() throws {
        let server = try RedisServer(arguments: ["--requirepass", "p@ss"])
        let url = "redis://:p%40ss@127.0.0.1:\(server.port)"
        let second = try RedisConnection(endpoint: RedisEndpoint(url: url + "/2"))
        #expect(try second.send("SET", "only-in-2", "1") == .simpleString("OK"))
        let first = try RedisConnection(endpoint: RedisEndpoint(url: url))
        #expect(try first.send("GET", "only-in-2") == .null)
        #expect(try second.send("GET", "only-in-2") == .bulkString(Array("1".utf8)))
        #expect(throws: RedisError.serverError("WRONGPASS invalid username-password pair or user is disabled.")) {
            try RedisConnection(endpoint: RedisEndpoint(url: "redis://:nope@127.0.0.1:\(server.port)"))
        }
        let anonymous = try RedisConnection(endpoint: RedisEndpoint(host: "127.0.0.1", port: server.port))
        #expect(throws: RedisError.serverError("NOAUTH Authentication required.")) { try anonymous.send("GET", "x") }
    }

    @Test("a refused connection fails at once with a typed error")
    func refused() throws {
        let (listener, port) = try Socket.listen(host: "127.0.0.1", port: 0, backlog: 1)
        Socket.close(listener)
        let start = Date()
        #expect(throws: RedisError.connectFailed(endpoint: "redis://127.0.0.1:\(port)/0", errno: ECONNREFUSED)) {
            try RedisConnection(endpoint: RedisEndpoint(host: "127.0.0.1", port: port), timeouts: Self.fast)
        }
        #expect(Date().timeIntervalSince(start) < 1)
    }

    @Test("a server that accepts but never answers times out within the operation timeout")
    func silentServer() throws {
        // The kernel completes the handshake into the backlog; nothing ever reads or replies.
        let (listener, port) = try Socket.listen(host: "127.0.0.1", port: 0, backlog: 4)
        defer { Socket.close(listener) }
        let connection = try RedisConnection(endpoint: RedisEndpoint(host: "127.0.0.1", port: port), timeouts: Self.fast)
        let start = Date()
        #expect(throws: RedisError.timedOut(endpoint: "redis://127.0.0.1:\(port)/0", milliseconds: 500)) {
            try connection.send("PING")
        }
        let elapsed = Date().timeIntervalSince(start)
        #expect(elapsed >= 0.45 && elapsed < 1.5, "\(elapsed) s")
        #expect(connection.isBroken)
    }

    @Test("a server that sends bytes that are not RESP breaks the connection with a protocol error")
    func garbage() throws {
        let (listener, port) = try Socket.listen(host: "127.0.0.1", port: 0, backlog: 4)
        defer { Socket.close(listener) }
        let connection = try RedisConnection(endpoint: RedisEndpoint(host: "127.0.0.1", port: port), timeouts: Self.fast)
        var accepted: (descriptor: Int32, peer: String)?
        while accepted == nil {
            _ = Socket.wait(listener, for: .readable, timeoutMilliseconds: 1000)
            accepted = Socket.accept(listener)
        }
        guard let peer = accepted, peer.descriptor >= 0 else { Issue.record("accept failed"); return }
        defer { Socket.close(peer.descriptor) }
        _ = Array("HTTP/1.1 400 Bad Request\r\n\r\n".utf8).withUnsafeBytes { Socket.send(peer.descriptor, $0) }
        #expect(throws: RedisError.malformedReply(.unknownType(byte: UInt8(ascii: "H"), offset: 0))) { try connection.send("PING") }
        #expect(connection.isBroken)
    }

    @Test("the pool fails fast while Redis is down and reconnects when it is back")
    func poolRecovers() throws {
        let server = try RedisServer()
        let pool = RedisConnectionPool(endpoint: RedisEndpoint(host: "127.0.0.1", port: server.port), timeouts: Self.fast, capacity: 2)
        try pool.ping()
        #expect(pool.connectionsOpened == 1)
        server.kill()
        let start = Date()
        // The idle connection is found closed and retried on a fresh one, which is refused.
        #expect(throws: RedisError.connectFailed(endpoint: "redis://127.0.0.1:\(server.port)/0", errno: ECONNREFUSED)) {
            try pool.ping()
        }
        #expect {
            try pool.ping()
        } throws: { error in
            if case RedisError.backingOff = error { return true }
            return false
        }
        #expect(Date().timeIntervalSince(start) < 1, "a down server costs no waiting")
        try server.start()
        let deadline = Date().addingTimeInterval(5)
        var recovered = false
        while !recovered, Date() < deadline {
            recovered = (try? pool.ping()) != nil
            if !recovered { usleep(20_000) }
        }
        #expect(recovered)
        #expect(try pool.send("SET", "after", "restart") == .simpleString("OK"))
    }

    @Test("a pooled connection left stale by a restart is replaced without an error")
    func staleConnection() throws {
        let server = try RedisServer()
        let pool = RedisConnectionPool(endpoint: RedisEndpoint(host: "127.0.0.1", port: server.port), timeouts: Self.fast)
        try pool.ping()
        server.kill()
        try server.start()
        try pool.ping()
        #expect(pool.connectionsOpened == 2)
    }

    @Test("concurrent commands share the pool's bounded connections")
    func concurrency() throws {
        let server = try RedisServer()
        let pool = RedisConnectionPool(endpoint: RedisEndpoint(host: "127.0.0.1", port: server.port), timeouts: Self.fast, capacity: 3)
        let failures = Counter()
        DispatchQueue.concurrentPerform(iterations: 64) { index in
            do {
                _ = try pool.send("SET", "key\(index)", "\(index)")
                guard try pool.send("GET", "key\(index)") == .bulkString(Array("\(index)".utf8)) else { failures.add(); return }
            } catch {
                failures.add()
            }
        }
        #expect(failures.value == 0)
        #expect(pool.connectionsOpened <= 3)
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    var value: Int { lock.withLock { count } }
    func add() { lock.withLock { count += 1 } }
}
