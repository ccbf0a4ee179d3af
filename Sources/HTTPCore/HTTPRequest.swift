import Foundation

/// A complete HTTP request as received: head, decoded target parts and content.
public struct HTTPRequest: Sendable {
    /// The request method.
    public var method: HTTPMethod
    /// The request-target exactly as received (RFC 9112 §3.2).
    public var target: String
    /// The path component, still percent-encoded (`/v1/puzzles/a%20b`).
    public var rawPath: String
    /// The path, percent-decoded (`/v1/puzzles/a b`). `%2F` decodes to `/`, so routing uses
    /// `pathSegments` instead.
    public var path: String
    /// The path split on `/` and each segment percent-decoded; `/` gives `[]`, `/a//b/` gives
    /// `["a", "", "b", ""]`.
    public var pathSegments: [String]
    /// The query component without `?`, still percent-encoded; `nil` when the target has none.
    public var query: String?
    /// The decoded query parameters (`+` is a space, as in HTML forms); for a repeated name
    /// the last value wins — `queryItems` keeps them all.
    public var queryParameters: [String: String]
    /// Every decoded query `name=value` pair in order.
    public var queryItems: [(name: String, value: String)]
    /// The protocol version of the request.
    public var version: HTTPVersion
    /// The header fields.
    public var headers: HTTPHeaders
    /// The content after transfer decoding.
    public var body: [UInt8]
    /// Trailer fields of a chunked body (RFC 9112 §7.1.2); empty otherwise.
    public var trailers: HTTPHeaders
    /// Whether the connection stays open after the response (RFC 9112 §9.3: HTTP/1.1 unless
    /// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`).
    public var keepAlive: Bool
    /// Values of the `{name}` segments of the matched route; filled by `HTTPRouter`.
    public var pathParameters: [String: String] = [:]
    /// The peer address (`127.0.0.1:51234`), filled by `HTTPServer`.
    public var remoteAddress: String?
    /// Whether the client has closed its connection (so no one will read the answer); a handler
    /// checks it before expensive work. Always `false` for a request made outside a server.
    public var isAbandoned: @Sendable () -> Bool = { false }

    /// Creates a request, decoding the target; for handler tests and for the parser.
    ///
    /// - Parameters:
    ///   - method: the method.
    ///   - target: an origin-form (`/path?query`), absolute-form (`http://host/path`) or
    ///     asterisk-form (`*`) target.
    ///   - version: the protocol version.
    ///   - headers: the header fields.
    ///   - body: the content.
    ///   - keepAlive: persistence; by default derived from `version` and `Connection`.
    /// - Throws: `HTTPParseError.invalidRequestTarget` for a target that is not one of those
    ///   forms or has invalid percent-encoding.
    public init(
        method: HTTPMethod, target: String, version: HTTPVersion = .http1_1,
        headers: HTTPHeaders = [:], body: [UInt8] = [], trailers: HTTPHeaders = [:],
        keepAlive: Bool? = nil
    ) throws(HTTPParseError) {
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.body = body
        self.trailers = trailers
        self.keepAlive = keepAlive ?? HTTPRequest.defaultKeepAlive(version: version, headers: headers)

        let (pathPart, queryPart) = try HTTPRequest.splitTarget(target)
        rawPath = pathPart
        guard let decodedPath = HTTPRequest.percentDecode(pathPart) else {
            throw .invalidRequestTarget(target)
        }
        path = decodedPath
        var segments: [String] = []
        if pathPart != "/" && pathPart != "*" {
            for segment in pathPart.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
                guard let decoded = HTTPRequest.percentDecode(segment) else {
                    throw .invalidRequestTarget(target)
                }
                segments.append(decoded)
            }
        }
        pathSegments = segments
        query = queryPart
        if let queryPart {
            guard let items = HTTPRequest.parseQuery(queryPart) else { throw .invalidRequestTarget(target) }
            queryItems = items
        } else {
            queryItems = []
        }
        var parameters: [String: String] = [:]
        for item in queryItems { parameters[item.name] = item.value }
        queryParameters = parameters
    }

    /// The content as `Data` (for `JSONDecoder` and friends).
    public var bodyData: Data { Data(body) }

    /// RFC 9112 §9.3 persistence rules.
    static func defaultKeepAlive(version: HTTPVersion, headers: HTTPHeaders) -> Bool {
        let options = headers.tokens(for: "Connection")
        switch version {
        case .http1_1: return !options.contains("close")
        case .http1_0: return options.contains("keep-alive") && !options.contains("close")
        }
    }

    /// Splits a request-target into its path and query (RFC 9112 §3.2); the fragment is not
    /// part of a request target, so `#` is rejected.
    static func splitTarget(_ target: String) throws(HTTPParseError) -> (path: String, query: String?) {
        if target == "*" { return ("*", nil) }
        var rest = Substring(target)
        if !rest.hasPrefix("/") {
            // absolute-form: scheme "://" authority path-abempty [ "?" query ] (RFC 9112 §3.2.2)
            let lower = rest.lowercased()
            guard lower.hasPrefix("http://") || lower.hasPrefix("https://"),
                  let schemeEnd = rest.range(of: "://") else {
                throw .invalidRequestTarget(target)
            }
            rest = rest[schemeEnd.upperBound...]
            if let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) {
                rest = rest[slash...]
                if rest.hasPrefix("?") { rest = "/" + rest }
            } else {
                rest = "/"
            }
        }
        guard !rest.contains("#") else { throw .invalidRequestTarget(target) }
        if let question = rest.firstIndex(of: "?") {
            return (String(rest[..<question]), String(rest[rest.index(after: question)...]))
        }
        return (String(rest), nil)
    }

    /// Decodes `%XX` escapes (RFC 3986 §2.1) and, if asked, `+` as space
    /// (application/x-www-form-urlencoded).
    ///
    /// - Returns: the decoded string, or `nil` for a malformed escape or bytes that are not UTF-8.
    public static func percentDecode(_ text: some StringProtocol, plusAsSpace: Bool = false) -> String? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                    return nil
                }
                bytes.append(high << 4 | low)
            } else if plusAsSpace && byte == UInt8(ascii: "+") {
                bytes.append(UInt8(ascii: " "))
            } else {
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    /// Parses `a=1&b=x%20y&flag` into decoded pairs (a name without `=` has value "").
    ///
    /// - Returns: the pairs in order, or `nil` when an escape is malformed.
    public static func parseQuery(_ query: some StringProtocol) -> [(name: String, value: String)]? {
        var items: [(name: String, value: String)] = []
        for pair in Substring(query).split(separator: "&", omittingEmptySubsequences: true) {
            let name: Substring, value: Substring
            if let equals = pair.firstIndex(of: "=") {
                name = pair[..<equals]
                value = pair[pair.index(after: equals)...]
            } else {
                name = pair
                value = ""
            }
            guard let decodedName = percentDecode(name, plusAsSpace: true),
                  let decodedValue = percentDecode(value, plusAsSpace: true) else { return nil }
            items.append((decodedName, decodedValue))
        }
        return items
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
