import Foundation

/// What the server does to every handler's response before it is written: content coding,
/// conditional requests and CORS. Applied on the worker queue, after the handler.
///
/// Order matters. Compression runs first, since it changes the content and so the strong
/// `ETag` (a gzip form has its own tag); the conditional check then compares the client's tags
/// with the tag of the form it would receive, turning a match into 304 before any content is
/// sent; CORS fields go last, onto whatever is sent, 304 included.
public struct HTTPResponsePolicy: Sendable {
    /// Compression of text-like content; `nil` never compresses.
    public var compression: HTTPCompression?
    /// Answer 304 to `If-None-Match` / `If-Modified-Since` on responses with validators.
    public var conditionalRequests: Bool
    /// Cross-origin access; `nil` (the default) sends no CORS field, so browsers keep other
    /// origins' scripts from reading answers.
    public var cors: HTTPCORSPolicy?

    /// Creates a policy; by default gzip for clients that accept it, conditional requests, no CORS.
    public init(compression: HTTPCompression? = HTTPCompression(), conditionalRequests: Bool = true, cors: HTTPCORSPolicy? = nil) {
        self.compression = compression
        self.conditionalRequests = conditionalRequests
        self.cors = cors
    }

    /// The response to send for a handler's response to `request`.
    public func apply(_ response: HTTPResponse, to request: HTTPRequest, now: Date = Date()) -> HTTPResponse {
        var result = response
        compression?.apply(to: &result, for: request)
        if conditionalRequests && HTTPConditionalRequest.isNotModified(request: request, response: result, now: now) {
            result = HTTPConditionalRequest.notModified(from: result)
        }
        cors?.apply(to: &result, for: request)
        return result
    }
}
