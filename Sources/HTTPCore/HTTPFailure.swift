/// Why the server or router answers with an error instead of a handler's response.
///
/// Handlers may throw it too (`throw HTTPFailure.notFound(path: ...)`); an `HTTPErrorRenderer`
/// turns it into the response body the service wants (plain text by default, JSON for an API).
public enum HTTPFailure: Error, Sendable, HTTPStatusConvertible, CustomStringConvertible {
    /// The bytes were not an acceptable request. → the error's status (400, 413, 414, 431, 501, 505)
    case malformedRequest(HTTPParseError)
    /// The head or content did not arrive within its timeout (RFC 9110 §15.5.9). → 408
    case requestTimeout
    /// The server cannot take the request now (a connection bound or the body memory budget);
    /// the client may retry. → 503 (the server adds `Retry-After`)
    case serviceUnavailable(HTTPUnavailableReason)
    /// No route and no file for the path. → 404
    case notFound(path: String)
    /// A route matches the path but not the method (RFC 9110 §15.5.6). → 405 with `Allow`
    case methodNotAllowed(allowed: [HTTPMethod])
    /// A handler threw: the error's status when it is `HTTPStatusConvertible`, else 500.
    case handlerError(any Error)

    public var status: HTTPStatus {
        switch self {
        case .malformedRequest(let error): error.status
        case .requestTimeout: .requestTimeout
        case .serviceUnavailable: .serviceUnavailable
        case .notFound: .notFound
        case .methodNotAllowed: .methodNotAllowed
        case .handlerError(let error): (error as? any HTTPStatusConvertible)?.status ?? .internalServerError
        }
    }

    /// A message safe to show a client (internal errors are not described).
    public var message: String {
        switch self {
        case .malformedRequest(let error): error.description
        case .requestTimeout: "request not received in time"
        case .serviceUnavailable(let reason): reason.message
        case .notFound(let path): "no resource at \(path)"
        case .methodNotAllowed(let allowed): "method not allowed; allowed: \(allowed.map(\.rawValue).joined(separator: ", "))"
        case .handlerError(let error):
            error is any HTTPStatusConvertible ? String(describing: error) : "internal server error"
        }
    }

    public var description: String { "\(status.code) \(message)" }

    /// The `Allow` value for `methodNotAllowed` (RFC 9110 §10.2.1), else `nil`.
    public var allowHeader: String? {
        guard case .methodNotAllowed(let allowed) = self else { return nil }
        return allowed.sorted().map(\.rawValue).joined(separator: ", ")
    }

    /// The default renderer: `text/plain` with `message`.
    public static let plainTextRenderer: HTTPErrorRenderer = { failure in
        HTTPResponse.text(failure.message + "\n", status: failure.status)
    }

    /// Renders a failure with `renderer`, then enforces what the protocol requires whatever
    /// the renderer did: the status, `Allow` on 405, and closing after a malformed request.
    public func response(renderer: HTTPErrorRenderer) -> HTTPResponse {
        var response = renderer(self)
        response.status = status
        if let allowHeader { response.headers["Allow"] = allowHeader }
        switch self {
        case .malformedRequest, .requestTimeout, .serviceUnavailable: response.closesConnection = true
        default: break
        }
        return response
    }
}

/// Turns a failure into a response (status and `Allow` are enforced afterwards).
public typealias HTTPErrorRenderer = @Sendable (HTTPFailure) -> HTTPResponse

/// Why a request was turned away with 503 before a handler saw it.
public enum HTTPUnavailableReason: Sendable, Equatable {
    /// The server holds its maximum number of connections (``HTTPServerConfiguration/maxConnections``).
    case connectionLimit(Int)
    /// The client's address holds the most connections one client may open
    /// (``HTTPServerConfiguration/maxConnectionsPerClient``).
    case clientConnectionLimit(Int)
    /// The declared content does not fit beside the content already buffered
    /// (``HTTPServerConfiguration/bodyMemoryBudget``, in bytes).
    case bodyMemoryBudget(Int)

    /// A message for the client; it names the bound, never the client's input.
    public var message: String {
        switch self {
        case .connectionLimit(let limit):
            "the server holds its maximum of \(limit) connections; retry shortly"
        case .clientConnectionLimit(let limit):
            "this client address already holds \(limit) connections, the most one client may open; close one or retry shortly"
        case .bodyMemoryBudget(let bytes):
            "the server's memory for request content in flight (\(HTTPUnavailableReason.describe(bytes: bytes))) is in use; retry shortly"
        }
    }

    static func describe(bytes: Int) -> String {
        bytes >= 1 << 20 && bytes % (1 << 20) == 0 ? "\(bytes >> 20) MiB" : "\(bytes) bytes"
    }
}
