import Glibc

/// Why a Redis command, connection or URL failed.
public enum RedisError: Error, Sendable, Equatable, CustomStringConvertible {
    /// How a reply breaks RESP2.
    public enum Malformation: Sendable, Equatable {
        /// The first byte of a reply is no RESP2 type (`+ - : $ *`).
        case unknownType(byte: UInt8, offset: Int)
        /// A bulk string or array length is not an integer ≥ -1.
        case invalidLength(String, offset: Int)
        /// An integer reply is not a decimal `Int64`.
        case invalidInteger(String, offset: Int)
        /// A CR without LF, a bare LF, or a bulk string not followed by CRLF.
        case missingTerminator(offset: Int)
        /// A line longer than the parser's limit.
        case lineTooLong(limit: Int)
        /// A bulk string longer than the parser's limit.
        case bulkTooLarge(length: Int, limit: Int)
        /// An array with more elements than the parser's limit.
        case arrayTooLarge(count: Int, limit: Int)
        /// Arrays nested deeper than the parser's limit.
        case nestingTooDeep(limit: Int)
    }

    /// A `redis://` URL that cannot be used; `reason` says which part is wrong.
    case invalidURL(String, reason: String)
    /// The reply bytes are not RESP2; the connection is dropped.
    case malformedReply(Malformation)
    /// The host did not resolve.
    case resolutionFailed(endpoint: String, message: String)
    /// No TCP connection could be made (`errno`: refused, unreachable, …).
    case connectFailed(endpoint: String, errno: Int32)
    /// The TCP connection was not made within the connect timeout.
    case connectTimedOut(endpoint: String, milliseconds: Int)
    /// A command got no complete reply within the operation timeout.
    case timedOut(endpoint: String, milliseconds: Int)
    /// The server closed the connection.
    case connectionClosed(endpoint: String)
    /// A send or receive failed with `errno`.
    case transferFailed(endpoint: String, errno: Int32)
    /// Every connection of the pool stayed busy for the operation timeout.
    case poolExhausted(endpoint: String, milliseconds: Int)
    /// A recent attempt failed and the pool waits `retryDelay` before it connects again.
    case backingOff(endpoint: String, lastFailure: String)
    /// The server answered the command with an error reply (`-ERR …`, `-NOAUTH …`, `-OOM …`).
    case serverError(String)
    /// The reply has a type the command does not answer with.
    case unexpectedReply(command: String, reply: String)

    /// Whether the failure concerns the connection (it is dropped and the server counts as
    /// unreachable) rather than one command.
    public var isConnectionFailure: Bool {
        switch self {
        case .invalidURL, .serverError, .unexpectedReply: false
        default: true
        }
    }

    public var description: String {
        switch self {
        case .invalidURL(let url, let reason): "invalid Redis URL '\(url)': \(reason)"
        case .malformedReply(let malformation): "malformed reply: \(malformation)"
        case .resolutionFailed(let endpoint, let message): "cannot resolve \(endpoint): \(message)"
        case .connectFailed(let endpoint, let code): "cannot connect to \(endpoint): \(String(cString: strerror(code)))"
        case .connectTimedOut(let endpoint, let milliseconds): "no connection to \(endpoint) within \(milliseconds) ms"
        case .timedOut(let endpoint, let milliseconds): "\(endpoint) did not answer within \(milliseconds) ms"
        case .connectionClosed(let endpoint): "\(endpoint) closed the connection"
        case .transferFailed(let endpoint, let code): "connection to \(endpoint) failed: \(String(cString: strerror(code)))"
        case .poolExhausted(let endpoint, let milliseconds): "no free connection to \(endpoint) within \(milliseconds) ms"
        case .backingOff(let endpoint, let lastFailure):
            lastFailure.contains(endpoint) ? "\(lastFailure) (retrying shortly)" : "\(endpoint): \(lastFailure) (retrying shortly)"
        case .serverError(let message): "Redis error: \(message)"
        case .unexpectedReply(let command, let reply): "unexpected reply to \(command): \(reply)"
        }
    }
}

extension RedisError.Malformation: CustomStringConvertible {
    public var description: String {
        switch self {
        case .unknownType(let byte, let offset): "unknown type byte 0x\(String(byte, radix: 16)) at \(offset)"
        case .invalidLength(let text, let offset): "invalid length '\(text)' at \(offset)"
        case .invalidInteger(let text, let offset): "invalid integer '\(text)' at \(offset)"
        case .missingTerminator(let offset): "missing CRLF at \(offset)"
        case .lineTooLong(let limit): "line longer than \(limit) bytes"
        case .bulkTooLarge(let length, let limit): "bulk string of \(length) bytes exceeds \(limit)"
        case .arrayTooLarge(let count, let limit): "array of \(count) elements exceeds \(limit)"
        case .nestingTooDeep(let limit): "arrays nested deeper than \(limit)"
        }
    }
}
