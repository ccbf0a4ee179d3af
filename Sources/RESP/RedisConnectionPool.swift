import Dispatch
import Foundation
import Sockets

/// A bounded set of connections to one Redis server, safe to use from any thread.
///
/// Each command borrows an idle connection (or opens one; at most `capacity` are in use at
/// once), and gives it back unless it broke. Failure handling, so that a down or slow server
/// makes callers fail fast and never hang, and the pool recovers by itself:
///
/// - every wait is bounded: connecting by `timeouts.connect`, a command and the wait for a free
///   connection by `timeouts.operation`;
/// - a reused connection that turns out closed (the server restarted since it was last used)
///   is retried once on a fresh connection, and the other idle connections are dropped with it;
///   commands are retried only on that path, where the server never received them or they are
///   idempotent (`GET`, `SET … PX`, `PING`);
/// - after a connection failure the pool answers ``RedisError/backingOff(endpoint:lastFailure:)``
///   for `timeouts.retryDelay` without touching the network, then connects again.
public final class RedisConnectionPool: @unchecked Sendable {
    // Thread safety: `idle`, `failedUntil`, `lastFailure` and the counters are touched only with
    // `lock` held; a connection is used by the one thread that borrowed it.
    public let endpoint: RedisEndpoint
    public let timeouts: RedisTimeouts
    /// Most connections in use at once.
    public let capacity: Int
    public let limits: RESPParser.Limits

    private let lock = NSLock()
    private let slots: DispatchSemaphore
    private var idle: [RedisConnection] = []
    private var failedUntil = 0
    private var lastFailure: RedisError?
    private var opened = 0

    /// Creates an empty pool; nothing connects until the first command.
    public init(endpoint: RedisEndpoint, timeouts: RedisTimeouts = RedisTimeouts(), capacity: Int = 8,
                limits: RESPParser.Limits = RESPParser.Limits()) {
        precondition(capacity >= 1, "a pool holds at least one connection")
        self.endpoint = endpoint
        self.timeouts = timeouts
        self.capacity = capacity
        self.limits = limits
        slots = DispatchSemaphore(value: capacity)
    }

    /// Connections opened since the pool was made (a reconnect opens one).
    public var connectionsOpened: Int { lock.withLock { opened } }

    /// Sends one command on a pooled connection and reads its reply.
    ///
    /// - Returns: the reply (an error reply is thrown as `RedisError.serverError`).
    /// - Throws: `RedisError`; ``RedisError/isConnectionFailure`` tells an unreachable or
    ///   misbehaving server from a refused command.
    public func send(_ arguments: [[UInt8]]) throws(RedisError) -> RESPValue {
        let wait = timeouts.operation.clampedMilliseconds
        guard slots.wait(timeout: .now() + .milliseconds(wait)) == .success else {
            throw .poolExhausted(endpoint: endpoint.description, milliseconds: wait)
        }
        defer { slots.signal() }
        var fresh = false
        while true {
            let (connection, reused) = try borrow(fresh: fresh)
            do {
                let reply = try connection.send(arguments)
                giveBack(connection)
                return reply
            } catch {
                if connection.isBroken {
                    if reused, !fresh, case .connectionClosed = error {
                        lock.withLock { idle.removeAll() }
                        fresh = true
                        continue
                    }
                    recordFailure(error)
                } else {
                    giveBack(connection)
                }
                throw error
            }
        }
    }

    /// ``send(_:)-([[UInt8]])`` for textual arguments.
    public func send(_ words: String...) throws(RedisError) -> RESPValue {
        try send(words.map { Array($0.utf8) })
    }

    /// Checks the server answers `PING` with `PONG`.
    public func ping() throws(RedisError) {
        let reply = try send("PING")
        guard reply == .simpleString("PONG") else { throw .unexpectedReply(command: "PING", reply: reply.description) }
    }

    /// Drops every idle connection (they reconnect on demand).
    public func closeIdleConnections() {
        lock.withLock { idle.removeAll() }
    }

    private func borrow(fresh: Bool) throws(RedisError) -> (RedisConnection, reused: Bool) {
        let now = Socket.monotonicMilliseconds()
        let state: (RedisConnection?, RedisError?) = lock.withLock {
            if !fresh, let connection = idle.popLast() { return (connection, nil) }
            if now < failedUntil, let lastFailure {
                return (nil, .backingOff(endpoint: endpoint.description, lastFailure: lastFailure.description))
            }
            return (nil, nil)
        }
        if let connection = state.0 { return (connection, true) }
        if let refusal = state.1 { throw refusal }
        do {
            let connection = try RedisConnection(endpoint: endpoint, timeouts: timeouts, limits: limits)
            lock.withLock { opened += 1 }
            return (connection, false)
        } catch {
            if error.isConnectionFailure { recordFailure(error) }
            throw error
        }
    }

    private func giveBack(_ connection: RedisConnection) {
        lock.withLock {
            failedUntil = 0
            lastFailure = nil
            if idle.count < capacity { idle.append(connection) }
        }
    }

    private func recordFailure(_ error: RedisError) {
        let until = Socket.monotonicMilliseconds() + timeouts.retryDelay.clampedMilliseconds
        lock.withLock {
            failedUntil = until
            lastFailure = error
        }
    }
}
