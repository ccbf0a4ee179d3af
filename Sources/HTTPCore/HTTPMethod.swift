/// The request methods this server implements (RFC 9110 §9).
///
/// A syntactically valid method outside this set (including `CONNECT`, which would need
/// tunnelling) is answered with 501 Not Implemented (RFC 9110 §9.1).
public enum HTTPMethod: String, Sendable, Hashable, CaseIterable, Comparable {
    case get = "GET"
    case head = "HEAD"
    case post = "POST"
    case put = "PUT"
    case delete = "DELETE"
    case options = "OPTIONS"
    case patch = "PATCH"
    case trace = "TRACE"

    /// Orders methods by their position in `allCases`, so `Allow` lists are stable.
    public static func < (lhs: HTTPMethod, rhs: HTTPMethod) -> Bool {
        let order = HTTPMethod.allCases
        return (order.firstIndex(of: lhs) ?? 0) < (order.firstIndex(of: rhs) ?? 0)
    }
}

/// The protocol versions this server speaks (RFC 9112 §2.3).
public enum HTTPVersion: String, Sendable, Hashable {
    case http1_0 = "HTTP/1.0"
    case http1_1 = "HTTP/1.1"
}
