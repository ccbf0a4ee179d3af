/// A RESP2 reply (Redis serialisation protocol, <https://redis.io/docs/latest/develop/reference/protocol-spec/>).
///
/// Both RESP2 nulls (the null bulk string `$-1` and the null array `*-1`) are ``null``.
public enum RESPValue: Sendable, Equatable, CustomStringConvertible {
    /// `+OK\r\n`.
    case simpleString(String)
    /// `-ERR message\r\n`: the command failed; the connection stays usable.
    case error(String)
    /// `:42\r\n`.
    case integer(Int64)
    /// `$3\r\nfoo\r\n`: binary-safe bytes.
    case bulkString([UInt8])
    /// `*2\r\n...`.
    case array([RESPValue])
    /// `$-1\r\n` or `*-1\r\n`.
    case null

    public var description: String {
        switch self {
        case .simpleString(let text): "+\(text)"
        case .error(let message): "-\(message)"
        case .integer(let value): ":\(value)"
        case .bulkString(let bytes):
            bytes.count <= 64 && bytes.allSatisfy({ (0x20..<0x7f).contains($0) })
                ? "$\"\(String(decoding: bytes, as: UTF8.self))\"" : "$<\(bytes.count) bytes>"
        case .array(let values): "[" + values.map(\.description).joined(separator: ", ") + "]"
        case .null: "(nil)"
        }
    }
}

/// Encodes commands the way clients send them: an array of bulk strings.
public enum RESPCommand {
    /// `*N\r\n` then `$len\r\nbytes\r\n` for each argument.
    ///
    /// - Parameter arguments: the command name then its arguments, any bytes (binary-safe).
    /// - Returns: the bytes to send.
    public static func encode(_ arguments: [[UInt8]]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16 + arguments.reduce(0) { $0 + $1.count + 16 })
        bytes.append(UInt8(ascii: "*"))
        bytes.append(contentsOf: String(arguments.count).utf8)
        bytes.append(contentsOf: [13, 10])
        for argument in arguments {
            bytes.append(UInt8(ascii: "$"))
            bytes.append(contentsOf: String(argument.count).utf8)
            bytes.append(contentsOf: [13, 10])
            bytes.append(contentsOf: argument)
            bytes.append(contentsOf: [13, 10])
        }
        return bytes
    }

    /// ``encode(_:)`` for textual arguments (UTF-8).
    public static func encode(_ arguments: [String]) -> [UInt8] {
        encode(arguments.map { Array($0.utf8) })
    }
}
