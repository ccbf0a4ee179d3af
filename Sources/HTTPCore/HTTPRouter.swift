/// Maps method and path to handlers, with `{name}` path parameters.
///
/// Patterns are `/`-separated segments: a literal, `{name}` (one segment, percent-decoded into
/// `request.pathParameters[name]`), or as the last segment `{name...}` (the rest of the path,
/// zero or more segments joined by `/`). Routes are tried in registration order.
///
/// Resolution (RFC 9110 §9, §15.5.5, §15.5.6):
/// 1. the first route whose pattern and method match handles the request;
/// 2. HEAD falls back to the GET route of the same pattern (the writer drops the body);
/// 3. OPTIONS without a route answers 204 with `Allow`;
/// 4. a path matched only under other methods answers 405 with `Allow`;
/// 5. otherwise `fallback` (e.g. static files) if set, else 404.
///
/// A handler that throws `HTTPFailure` is rendered as that failure; any other error becomes
/// `HTTPFailure.handlerError` (500 unless it is `HTTPStatusConvertible`).
public struct HTTPRouter: Sendable {
    /// A request handler. It runs on a concurrent queue; it may block (it holds one worker).
    public typealias Handler = @Sendable (HTTPRequest) throws -> HTTPResponse

    private struct Route: Sendable {
        let method: HTTPMethod
        let pattern: String
        let segments: [Segment]
        let handler: Handler
    }

    private enum Segment: Sendable, Equatable {
        case literal(String)
        case parameter(String)
        case remainder(String)
    }

    private var table: [Route] = []

    /// Renders 404, 405 and handler errors.
    public var errorRenderer: HTTPErrorRenderer
    /// Handles requests whose path no route matches; `nil` answers 404.
    public var fallback: Handler?

    /// Creates an empty router.
    public init(errorRenderer: @escaping HTTPErrorRenderer = HTTPFailure.plainTextRenderer) {
        self.errorRenderer = errorRenderer
    }

    /// The registered (method, pattern) pairs in order.
    public var routes: [(method: HTTPMethod, pattern: String)] {
        table.map { ($0.method, $0.pattern) }
    }

    /// Registers a handler.
    ///
    /// - Parameters:
    ///   - method: the method it serves.
    ///   - pattern: a path pattern such as `/v1/puzzles/{id}/soft`; it must start with `/`.
    ///   - handler: the handler.
    public mutating func add(_ method: HTTPMethod, _ pattern: String, handler: @escaping Handler) {
        precondition(pattern.hasPrefix("/"), "route pattern \(pattern) must start with /")
        var segments: [Segment] = []
        let parts = pattern == "/" ? [] : pattern.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        for (position, part) in parts.enumerated() {
            if part.hasPrefix("{") && part.hasSuffix("...}") {
                precondition(position == parts.count - 1, "{name...} must be the last segment of \(pattern)")
                segments.append(.remainder(String(part.dropFirst().dropLast(4))))
            } else if part.hasPrefix("{") && part.hasSuffix("}") {
                segments.append(.parameter(String(part.dropFirst().dropLast())))
            } else {
                precondition(!part.contains("{") && !part.contains("}"), "malformed segment \(part) in \(pattern)")
                segments.append(.literal(String(part)))
            }
        }
        table.append(Route(method: method, pattern: pattern, segments: segments, handler: handler))
    }

    public mutating func get(_ pattern: String, handler: @escaping Handler) { add(.get, pattern, handler: handler) }
    public mutating func post(_ pattern: String, handler: @escaping Handler) { add(.post, pattern, handler: handler) }
    public mutating func put(_ pattern: String, handler: @escaping Handler) { add(.put, pattern, handler: handler) }
    public mutating func delete(_ pattern: String, handler: @escaping Handler) { add(.delete, pattern, handler: handler) }

    /// Answers a request (never throws: failures are rendered).
    public func respond(to request: HTTPRequest) -> HTTPResponse {
        var allowed: Set<HTTPMethod> = []
        var headCandidate: (Route, [String: String])?
        var matchedPattern: String?
        for route in table {
            guard let parameters = match(route.segments, request.pathSegments) else { continue }
            matchedPattern = matchedPattern ?? route.pattern
            if route.method == request.method {
                return run(route.handler, pattern: route.pattern, request: request, parameters: parameters)
            }
            allowed.insert(route.method)
            if route.method == .get {
                allowed.insert(.head)
                if request.method == .head && headCandidate == nil { headCandidate = (route, parameters) }
            }
        }
        if let (route, parameters) = headCandidate {
            return run(route.handler, pattern: route.pattern, request: request, parameters: parameters)
        }
        if !allowed.isEmpty {
            allowed.insert(.options)
            if request.method == .options {
                var response = HTTPResponse(status: .noContent, route: matchedPattern)
                response.headers["Allow"] = allowed.sorted().map(\.rawValue).joined(separator: ", ")
                return response
            }
            var response = HTTPFailure.methodNotAllowed(allowed: allowed.sorted()).response(renderer: errorRenderer)
            response.route = matchedPattern
            return response
        }
        if let fallback {
            return run(fallback, pattern: nil, request: request, parameters: [:])
        }
        return HTTPFailure.notFound(path: request.path).response(renderer: errorRenderer)
    }

    private func run(_ handler: Handler, pattern: String?, request: HTTPRequest, parameters: [String: String]) -> HTTPResponse {
        var routed = request
        routed.pathParameters = parameters
        var response: HTTPResponse
        do {
            response = try handler(routed)
        } catch let failure as HTTPFailure {
            response = failure.response(renderer: errorRenderer)
        } catch {
            response = HTTPFailure.handlerError(error).response(renderer: errorRenderer)
        }
        if response.route == nil { response.route = pattern }
        return response
    }

    private func match(_ pattern: [Segment], _ path: [String]) -> [String: String]? {
        var parameters: [String: String] = [:]
        for (position, segment) in pattern.enumerated() {
            switch segment {
            case .remainder(let name):
                parameters[name] = position < path.count ? path[position...].joined(separator: "/") : ""
                return parameters
            case .literal(let text):
                guard position < path.count, path[position] == text else { return nil }
            case .parameter(let name):
                guard position < path.count, !path[position].isEmpty else { return nil }
                parameters[name] = path[position]
            }
        }
        return pattern.count == path.count ? parameters : nil
    }
}
