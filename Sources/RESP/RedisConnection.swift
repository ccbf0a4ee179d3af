import Glibc
import Sockets

/// How long the client waits before it calls Redis unavailable.
public struct RedisTimeouts: Sendable, Equatable {
    /// Most time to open a TCP connection to one address.
    public var connect: Duration
    /// Most time from sending a command to its complete reply (and to wait for a free pooled
    /// connection).
    public var operation: Duration
    /// After a connection failure, how long the pool answers ``RedisError/backingOff(endpoint:lastFailure:)``
    /// at once instead of connecting again, so a down server costs each request nothing.
    public var retryDelay: Duration

    public init(connect: Duration = .milliseconds(250), operation: Duration = .seconds(1), retryDelay: Duration = .milliseconds(500)) {
        self.connect = connect
        self.operation = operation
        self.retryDelay = retryDelay
    }
}

extension Duration {
    /// Whole milliseconds, at least 1.
    var clampedMilliseconds: Int {
        let (seconds, attoseconds) = components
        return max(1, Int(clamping: seconds) &* 1000 &+ Int(attoseconds / 1_000_000_000_000_000))
    }
}

/// One connection to a Redis server speaking RESP2: commands go out one at a time, each waits
/// for its reply within the operation timeout.
///
/// A connection that timed out, was closed or received bytes that are not RESP is
/// ``isBroken``: a late or partial reply would be read as the answer to the next command, so it
/// must be discarded. An error reply (`-ERR`) leaves it usable. Not thread-safe: one user at a
/// time (the pool hands it out).
public final class RedisConnection {
    public let endpoint: RedisEndpoint
    public let timeouts: RedisTimeouts
    public private(set) var isBroken = false
    private let descriptor: Int32
    private let parser: RESPParser
    private var buffer: [UInt8] = []
    private var scratch = [UInt8](repeating: 0, count: 64 << 10)

    /// Connects, then sends `AUTH` and `SELECT` when the endpoint asks for them.
    ///
    /// - Parameter limits: bounds on a reply (the largest value read with `GET` must fit).
    /// - Throws: `RedisError` when the server is unreachable, too slow, or refuses the login.
    public init(endpoint: RedisEndpoint, timeouts: RedisTimeouts = RedisTimeouts(),
                limits: RESPParser.Limits = RESPParser.Limits()) throws(RedisError) {
        self.endpoint = endpoint
        self.timeouts = timeouts
        parser = RESPParser(limits: limits)
        do {
            descriptor = try Socket.connect(host: endpoint.host, port: endpoint.port,
                                            timeoutMilliseconds: timeouts.connect.clampedMilliseconds)
        } catch {
            switch error {
            case .addressResolution(_, let message): throw .resolutionFailed(endpoint: endpoint.description, message: message)
            case .systemCall(_, let code) where code == ETIMEDOUT:
                throw .connectTimedOut(endpoint: endpoint.description, milliseconds: timeouts.connect.clampedMilliseconds)
            case .systemCall(_, let code): throw .connectFailed(endpoint: endpoint.description, errno: code)
            }
        }
        if let password = endpoint.password {
            let words = endpoint.user.map { ["AUTH", $0, password] } ?? ["AUTH", password]
            try expectOK(try send(words.map { Array($0.utf8) }), command: "AUTH")
        }
        if endpoint.database != 0 {
            try expectOK(try send(["SELECT", String(endpoint.database)].map { Array($0.utf8) }), command: "SELECT")
        }
    }

    deinit { Socket.close(descriptor) }

    /// Sends one command and reads its reply.
    ///
    /// - Parameter arguments: the command name then its arguments (binary-safe).
    /// - Returns: the reply; never ``RESPValue/error(_:)``, which is thrown.
    /// - Throws: `RedisError.serverError` for an error reply; any other error breaks the connection.
    public func send(_ arguments: [[UInt8]]) throws(RedisError) -> RESPValue {
        guard !isBroken else { throw .connectionClosed(endpoint: endpoint.description) }
        let deadline = Socket.monotonicMilliseconds() + timeouts.operation.clampedMilliseconds
        do throws(RedisError) {
            try write(RESPCommand.encode(arguments), deadline: deadline)
            let reply = try read(deadline: deadline)
            if case .error(let message) = reply { throw RedisError.serverError(message) }
            return reply
        } catch {
            if error.isConnectionFailure { isBroken = true }
            throw error
        }
    }

    /// ``send(_:)-([[UInt8]])`` for textual arguments.
    public func send(_ words: String...) throws(RedisError) -> RESPValue {
        try send(words.map { Array($0.utf8) })
    }

    private func expectOK(_ reply: RESPValue, command: String) throws(RedisError) {
        guard reply == .simpleString("OK") else {
            isBroken = true
            throw .unexpectedReply(command: command, reply: reply.description)
        }
    }

    private func write(_ bytes: [UInt8], deadline: Int) throws(RedisError) {
        var offset = 0
        while offset < bytes.count {
            let result = bytes[offset...].withUnsafeBytes { Socket.send(descriptor, $0) }
            switch result {
            case .bytes(let count): offset += count
            case .wouldBlock: try wait(for: .writable, deadline: deadline)
            case .closed: throw .connectionClosed(endpoint: endpoint.description)
            case .failed(let code): throw Self.failure(code, endpoint: endpoint)
            }
        }
    }

    private func read(deadline: Int) throws(RedisError) -> RESPValue {
        while true {
            if let (value, end) = try parser.parse(buffer) {
                buffer.removeFirst(end)
                return value
            }
            try wait(for: .readable, deadline: deadline)
            let result = scratch.withUnsafeMutableBytes { Socket.receive(descriptor, into: $0) }
            switch result {
            case .bytes(let count): buffer.append(contentsOf: scratch[0..<count])
            case .wouldBlock: continue
            case .closed: throw .connectionClosed(endpoint: endpoint.description)
            case .failed(let code): throw Self.failure(code, endpoint: endpoint)
            }
        }
    }

    private func wait(for interest: Socket.Interest, deadline: Int) throws(RedisError) {
        let left = deadline - Socket.monotonicMilliseconds()
        guard left > 0 else { throw .timedOut(endpoint: endpoint.description, milliseconds: timeouts.operation.clampedMilliseconds) }
        switch Socket.wait(descriptor, for: interest, timeoutMilliseconds: left) {
        case .ready: return
        case .timedOut: throw .timedOut(endpoint: endpoint.description, milliseconds: timeouts.operation.clampedMilliseconds)
        case .failed(let code): throw .transferFailed(endpoint: endpoint.description, errno: code)
        }
    }

    private static func failure(_ code: Int32, endpoint: RedisEndpoint) -> RedisError {
        code == ECONNRESET || code == EPIPE ? .connectionClosed(endpoint: endpoint.description)
            : .transferFailed(endpoint: endpoint.description, errno: code)
    }
}
