import Foundation
import Sockets

/// Everything an `HTTPServer` can be tuned with; the defaults suit a production service.
public struct HTTPServerConfiguration: Sendable {
    /// The address to listen on (`127.0.0.1`, `0.0.0.0`, `::`, a host name).
    public var host: String
    /// The port; 0 picks a free one (read `HTTPServer.port` after `start()`).
    public var port: Int
    /// Request size limits (414, 431, 413).
    public var limits: HTTPLimits
    /// Time from a request's first byte until its head is complete; then 408 and close.
    /// A client trickling bytes cannot extend it.
    public var headerTimeout: Duration
    /// Time from the end of the head until the content is complete; then 408 and close.
    public var bodyTimeout: Duration
    /// Time a keep-alive connection may wait for its next request; then it is closed silently.
    public var idleTimeout: Duration
    /// Time a response may wait without the client reading any of it; then the connection is
    /// closed.
    public var writeTimeout: Duration
    /// After a response that closes the connection, how long unread request bytes are drained
    /// (after a half-close) so the client reads the response instead of a reset (RFC 9112 §9.6).
    public var lingerTimeout: Duration
    /// How long `shutdown(graceful: true)` waits for in-flight requests before closing anyway.
    public var shutdownTimeout: Duration
    /// Most open connections. A connection beyond it is accepted, answered
    /// `503 Service Unavailable` with `Retry-After: 1`, and closed, so clients get a clear answer
    /// instead of a stalled connect.
    public var maxConnections: Int
    /// The listen backlog.
    public var backlog: Int
    /// Most open connections from one client address (503 beyond), so that one peer cannot
    /// take every connection.
    public var maxConnectionsPerClient: Int
    /// Most bytes of request content buffered over all connections at once: a request whose
    /// declared length (or, chunked, the body limit) does not fit gets 503 with `Retry-After`
    /// before its content is read.
    public var bodyMemoryBudget: Int
    /// Says whether a request is cheap (health, readiness, metrics, static files): cheap requests
    /// run on a thread of their own, never behind heavy work. `nil`: every request is heavy.
    public var isCheap: (@Sendable (HTTPRequest) -> Bool)?
    /// Called once per response with its log entry; `nil` disables logging. Runs on the
    /// server's event queue: keep it short.
    public var accessLog: (@Sendable (HTTPAccessLogEntry) -> Void)?
    /// Renders the errors the server answers itself (malformed requests, 408, 503).
    public var errorRenderer: HTTPErrorRenderer
    /// Applied to every handler's response: gzip, 304 for conditional requests, CORS.
    public var responsePolicy: HTTPResponsePolicy

    /// Creates a configuration.
    public init(
        host: String = "127.0.0.1", port: Int = 8080, limits: HTTPLimits = HTTPLimits(),
        headerTimeout: Duration = .seconds(10), bodyTimeout: Duration = .seconds(60),
        idleTimeout: Duration = .seconds(30), writeTimeout: Duration = .seconds(30),
        lingerTimeout: Duration = .seconds(2), shutdownTimeout: Duration = .seconds(30),
        maxConnections: Int = 1024, backlog: Int = 512, maxConnectionsPerClient: Int = 256,
        bodyMemoryBudget: Int = 256 << 20, isCheap: (@Sendable (HTTPRequest) -> Bool)? = nil,
        accessLog: (@Sendable (HTTPAccessLogEntry) -> Void)? = HTTPAccessLogEntry.writeToStandardOutput,
        errorRenderer: @escaping HTTPErrorRenderer = HTTPFailure.plainTextRenderer,
        responsePolicy: HTTPResponsePolicy = HTTPResponsePolicy()
    ) {
        precondition((0...65535).contains(port), "port \(port) outside 0...65535")
        precondition(maxConnections > 0 && backlog > 0 && maxConnectionsPerClient > 0, "connection bounds must be positive")
        precondition(bodyMemoryBudget > 0, "the body memory budget must be positive")
        self.host = host
        self.port = port
        self.limits = limits
        self.headerTimeout = headerTimeout
        self.bodyTimeout = bodyTimeout
        self.idleTimeout = idleTimeout
        self.writeTimeout = writeTimeout
        self.lingerTimeout = lingerTimeout
        self.shutdownTimeout = shutdownTimeout
        self.maxConnections = maxConnections
        self.backlog = backlog
        self.maxConnectionsPerClient = maxConnectionsPerClient
        self.bodyMemoryBudget = bodyMemoryBudget
        self.isCheap = isCheap
        self.accessLog = accessLog
        self.errorRenderer = errorRenderer
        self.responsePolicy = responsePolicy
    }
}

/// One access log record, made when a response is queued for sending.
public struct HTTPAccessLogEntry: Sendable {
    /// The peer address (`127.0.0.1:51234`).
    public var remoteAddress: String
    /// The method, or `-` when the request could not be parsed.
    public var method: String
    /// The request-target as received, or `-`.
    public var target: String
    /// The route pattern that answered, if any.
    public var route: String?
    /// The status sent.
    public var status: Int
    /// Content bytes in the response (headers excluded; 0 for HEAD).
    public var bytes: Int
    /// From the complete request (or the failure) to the response being queued.
    public var duration: Duration
    /// When the response was queued.
    public var date: Date

    /// `127.0.0.1:51234 - [Sun, 06 Nov 1994 08:49:37 GMT] "GET /healthz" 200 3 0.412ms`
    public var line: String {
        let milliseconds = Double(duration.components.seconds) * 1e3 + Double(duration.components.attoseconds) / 1e15
        let rounded = (milliseconds * 1000).rounded() / 1000
        return "\(remoteAddress) - [\(HTTPResponseWriter.httpDate(date))] \"\(method) \(target)\" \(status) \(bytes) \(rounded)ms"
    }

    /// The default log hook: `line` plus a newline, written unbuffered to standard output.
    public static let writeToStandardOutput: @Sendable (HTTPAccessLogEntry) -> Void = { entry in
        FileHandle.standardOutput.write(Data((entry.line + "\n").utf8))
    }
}

/// Why a server could not start.
public enum HTTPServerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `start()` was called twice.
    case alreadyStarted
    /// The host name did not resolve.
    case addressResolution(host: String, message: String)
    /// A socket call failed.
    case socket(operation: String, errno: Int32)

    public var description: String {
        switch self {
        case .alreadyStarted: "server already started"
        case .addressResolution(let host, let message): "cannot resolve \(host): \(message)"
        case .socket(let operation, let code): "\(operation) failed: \(String(cString: strerror(code)))"
        }
    }

    /// The server error that reports a failed socket call.
    init(_ error: SocketError) {
        switch error {
        case .addressResolution(let host, let message): self = .addressResolution(host: host, message: message)
        case .systemCall(let operation, let code): self = .socket(operation: operation, errno: code)
        }
    }
}
