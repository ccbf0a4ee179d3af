/// Where a Redis server is and how to log in: `redis://[[user]:password@]host[:port][/db]`
/// (the IANA `redis` scheme, <https://www.iana.org/assignments/uri-schemes/prov/redis>).
///
/// The port defaults to 6379 and the database to 0; an IPv6 host is bracketed
/// (`redis://[::1]:6379`); user and password are percent-decoded. TLS (`rediss://`) and query
/// parameters are refused rather than silently ignored.
public struct RedisEndpoint: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    /// The ACL user (Redis 6), `nil` for the default user.
    public var user: String?
    /// Sent with `AUTH` when present.
    public var password: String?
    /// Selected with `SELECT` when not 0.
    public var database: Int

    public init(host: String, port: Int = 6379, user: String? = nil, password: String? = nil, database: Int = 0) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database
    }

    /// Parses and validates a `redis://` URL.
    ///
    /// - Throws: `RedisError.invalidURL` naming the part that is wrong.
    public init(url: String) throws(RedisError) {
        func fail(_ reason: String) -> RedisError { .invalidURL(Self.redacted(url), reason: reason) }
        let scheme = "redis://"
        guard url.lowercased().hasPrefix(scheme) else {
            if url.lowercased().hasPrefix("rediss://") { throw fail("TLS (rediss://) is not supported") }
            throw fail("expected redis://[[user]:password@]host[:port][/db]")
        }
        var rest = Substring(url.dropFirst(scheme.count))
        guard !rest.contains("?"), !rest.contains("#") else { throw fail("query parameters and fragments are not supported") }
        var path = Substring("")
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        var user: String?, password: String?
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                let name = credentials[..<colon]
                guard let decodedName = Self.percentDecoded(name), let decoded = Self.percentDecoded(credentials[credentials.index(after: colon)...]) else {
                    throw fail("bad percent-encoding in the credentials")
                }
                user = name.isEmpty ? nil : decodedName
                password = decoded
            } else {
                guard let decoded = Self.percentDecoded(credentials) else { throw fail("bad percent-encoding in the credentials") }
                password = decoded
            }
            guard password?.isEmpty == false else { throw fail("the password is empty") }
        }
        var host: Substring, portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw fail("unterminated IPv6 address") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw fail("unexpected '\(after)' after the IPv6 address") }
                portText = after.dropFirst()
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = rest[..<colon]
            portText = rest[rest.index(after: colon)...]
        } else {
            host = rest
        }
        guard !host.isEmpty else { throw fail("the host is empty") }
        guard host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-._:%".contains($0)) }) else {
            throw fail("the host '\(host)' has characters a host name cannot have")
        }
        var port = 6379
        if let portText {
            guard let value = Int(portText), (1...65535).contains(value) else { throw fail("the port must be in 1...65535") }
            port = value
        }
        var database = 0
        if !path.isEmpty {
            guard let value = Int(path), value >= 0, value <= 1 << 20 else { throw fail("the database must be a number ≥ 0") }
            database = value
        }
        self.init(host: String(host), port: port, user: user, password: password, database: database)
    }

    /// The URL without the password, for messages and logs.
    public var description: String {
        let shownHost = host.contains(":") ? "[\(host)]" : host
        let credentials = password == nil ? "" : "\(user ?? ""):***@"
        return "redis://\(credentials)\(shownHost):\(port)/\(database)"
    }

    private static func redacted(_ url: String) -> String {
        guard let at = url.lastIndex(of: "@"), let start = url.range(of: "://")?.upperBound, start <= at else { return url }
        return url[..<start] + "***" + url[at...]
    }

    private static func percentDecoded(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var index = text.utf8.startIndex
        let utf8 = text.utf8
        while index < utf8.endIndex {
            let byte = utf8[index]
            if byte == UInt8(ascii: "%") {
                let first = utf8.index(after: index)
                guard first < utf8.endIndex else { return nil }
                let second = utf8.index(after: first)
                guard second < utf8.endIndex,
                      let value = UInt8(String(decoding: [utf8[first], utf8[second]], as: UTF8.self), radix: 16) else { return nil }
                bytes.append(value)
                index = utf8.index(after: second)
            } else {
                bytes.append(byte)
                index = utf8.index(after: index)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }
}
