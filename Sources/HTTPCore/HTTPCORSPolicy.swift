/// Why a CORS policy could not be made.
public enum HTTPCORSError: Error, Sendable, Equatable, CustomStringConvertible {
    /// An allowed origin that is neither `*` nor `scheme://host[:port]`.
    case invalidOrigin(String)

    public var description: String {
        switch self {
        case .invalidOrigin(let text):
            "invalid CORS origin \"\(text)\": give * or scheme://host[:port] (http or https, no path)"
        }
    }
}

/// Cross-origin resource sharing (the Fetch standard, "CORS protocol", §3.2).
///
/// A request whose `Origin` is allowed gets `Access-Control-Allow-Origin` (the origin itself,
/// or `*` when every origin is allowed) and `Access-Control-Expose-Headers` naming the
/// response's fields that are not CORS-safelisted (`Server-Timing`, `X-Puzzle-Id`, `Warning`, …),
/// so a page's script can read them. A preflight (`OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`) that the router answered with 2xx and `Allow` also gets
/// `Access-Control-Allow-Methods` (the `Allow` list), `Access-Control-Allow-Headers` and
/// `Access-Control-Max-Age`. An origin that is not allowed, or an `Origin` field that is not one
/// serialised origin, gets no CORS field at all, and the browser withholds the answer from the
/// page. Every response carries `Vary: Origin`, since the CORS fields depend on it. Credentials
/// (cookies, `Authorization`) are not part of this policy: no `Access-Control-Allow-Credentials`.
public struct HTTPCORSPolicy: Sendable {
    /// The allowed origins, normalised (lowercase, default port dropped); `["*"]` allows any.
    public let allowedOrigins: [String]
    /// Request fields a cross-origin request may carry beyond the safelisted ones.
    public var allowedHeaders: [String]
    /// Seconds a browser may cache a preflight answer (browsers cap it: Chromium at 7200).
    public var maxAge: Int

    /// The default extra request fields: `Content-Type` (to post PNG or JSON) and the
    /// conditional-request fields.
    public static let defaultAllowedHeaders = ["Content-Type", "Accept", "If-None-Match", "If-Modified-Since"]

    /// Creates a policy.
    ///
    /// - Parameters:
    ///   - allowedOrigins: `*`, or origins such as `https://example.com` or
    ///     `http://localhost:3000`.
    ///   - allowedHeaders: request fields allowed in cross-origin requests.
    ///   - maxAge: seconds a preflight answer may be cached.
    /// - Throws: `HTTPCORSError.invalidOrigin` for an entry that is not an origin.
    public init(allowedOrigins: [String], allowedHeaders: [String] = HTTPCORSPolicy.defaultAllowedHeaders,
                maxAge: Int = 600) throws(HTTPCORSError) {
        precondition(maxAge >= 0, "max age must not be negative")
        var origins: [String] = []
        for entry in allowedOrigins {
            if entry.trimmingWhitespace() == "*" {
                origins = ["*"]
                break
            }
            guard let origin = HTTPCORSPolicy.normalisedOrigin(entry),
                  origin.hasPrefix("http://") || origin.hasPrefix("https://") else {
                throw .invalidOrigin(entry)
            }
            if !origins.contains(origin) { origins.append(origin) }
        }
        self.allowedOrigins = origins
        self.allowedHeaders = allowedHeaders
        self.maxAge = maxAge
    }

    /// Whether every origin is allowed.
    public var allowsAnyOrigin: Bool { allowedOrigins == ["*"] }

    /// A serialised origin (RFC 6454 §6.2: `scheme "://" host [ ":" port ]`) in canonical form,
    /// lowercase and without the scheme's default port, or `nil` when the text is not one
    /// (a path, user information, a list of origins, `null`, non-ASCII).
    public static func normalisedOrigin(_ text: String) -> String? {
        let trimmed = text.trimmingWhitespace()
        guard trimmed.utf8.count <= 512, trimmed.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }),
              let separator = trimmed.range(of: "://") else { return nil }
        let scheme = trimmed[..<separator.lowerBound].lowercased()
        guard let first = scheme.utf8.first, (0x61...0x7A).contains(first),
              scheme.utf8.allSatisfy({ (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2B || $0 == 0x2D || $0 == 0x2E })
        else { return nil }
        var authority = Substring(trimmed[separator.upperBound...])
        var host: Substring
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[...close]
            let inner = host.dropFirst().dropLast()
            guard !inner.isEmpty, inner.utf8.allSatisfy({ isHexDigit($0) || $0 == 0x3A || $0 == 0x2E }) else { return nil }
            authority = authority[authority.index(after: close)...]
        } else {
            let end = authority.firstIndex(of: ":") ?? authority.endIndex
            host = authority[..<end]
            guard !host.isEmpty,
                  host.utf8.allSatisfy({ isHexDigit($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) || $0 == 0x2D || $0 == 0x2E })
            else { return nil }
            authority = authority[end...]
        }
        var port = ""
        if authority.hasPrefix(":") {
            let digits = authority.dropFirst()
            guard !digits.isEmpty, digits.count <= 5, digits.utf8.allSatisfy({ (0x30...0x39).contains($0) }),
                  let number = Int(digits), (1...65535).contains(number) else { return nil }
            let isDefault = (scheme == "http" && number == 80) || (scheme == "https" && number == 443)
            port = isDefault ? "" : ":\(number)"
        } else if !authority.isEmpty {
            return nil
        }
        return "\(scheme)://\(host.lowercased())\(port)"
    }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        (0x30...0x39).contains(byte) || (0x41...0x46).contains(byte) || (0x61...0x66).contains(byte)
    }

    /// The value of `Access-Control-Allow-Origin` for a request, or `nil` when it gets no CORS
    /// fields (no `Origin`, several, a malformed one, or one not allowed).
    public func allowedOrigin(for request: HTTPRequest) -> String? {
        let values = request.headers.values(for: "Origin")
        guard values.count == 1 else { return nil }
        if allowsAnyOrigin { return "*" }
        guard let origin = HTTPCORSPolicy.normalisedOrigin(values[0]), allowedOrigins.contains(origin) else { return nil }
        return origin
    }

    /// Response fields script may always read (Fetch §2.2.6 "CORS-safelisted response-header
    /// name"), which need no exposing.
    static let safelistedResponseHeaders: Set<String> = [
        "cache-control", "content-language", "content-length", "content-type", "expires", "last-modified", "pragma",
    ]

    /// Adds the CORS fields the request calls for.
    public func apply(to response: inout HTTPResponse, for request: HTTPRequest) {
        response.headers.addVary("Origin")
        guard let origin = allowedOrigin(for: request) else { return }
        let isPreflight = request.method == .options && request.headers.contains("Access-Control-Request-Method")
        if isPreflight {
            guard (200..<300).contains(response.status.code), let allow = response.headers["Allow"] else { return }
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Methods"] = allow
            response.headers["Access-Control-Allow-Headers"] = allowedHeaders.joined(separator: ", ")
            response.headers["Access-Control-Max-Age"] = String(maxAge)
            return
        }
        response.headers["Access-Control-Allow-Origin"] = origin
        var exposed: [String] = []
        for field in response.headers {
            let name = field.name.lowercased()
            guard !HTTPCORSPolicy.safelistedResponseHeaders.contains(name), !name.hasPrefix("access-control-"),
                  name != "vary", name != "set-cookie",
                  !exposed.contains(where: { HTTPHeaders.sameName($0, field.name) }) else { continue }
            exposed.append(field.name)
        }
        if !exposed.isEmpty {
            response.headers["Access-Control-Expose-Headers"] = exposed.joined(separator: ", ")
        }
    }
}
