import Foundation

/// A response a handler produces: status, header fields and content.
///
/// `Content-Length`, `Transfer-Encoding`, `Connection` and (when absent) `Date` are written by
/// `HTTPResponseWriter`; values set here for the first three are ignored.
public struct HTTPResponse: Sendable {
    /// The status.
    public var status: HTTPStatus
    /// Header fields to send.
    public var headers: HTTPHeaders
    /// The content (dropped on the wire for HEAD, 1xx, 204 and 304).
    public var body: [UInt8]
    /// Send the content with the chunked transfer coding (RFC 9112 §7.1) instead of
    /// `Content-Length`; HTTP/1.0 peers still get `Content-Length`.
    public var usesChunkedEncoding: Bool
    /// Close the connection after this response even if the client would keep it.
    public var closesConnection: Bool
    /// The route pattern that produced the response (`/v1/puzzles/{id}`), for access logs and
    /// metrics; never sent. `HTTPRouter` fills it in.
    public var route: String?

    /// Creates a response.
    public init(
        status: HTTPStatus = .ok, headers: HTTPHeaders = [:], body: [UInt8] = [],
        usesChunkedEncoding: Bool = false, closesConnection: Bool = false, route: String? = nil
    ) {
        self.status = status
        self.headers = headers
        self.body = body
        self.usesChunkedEncoding = usesChunkedEncoding
        self.closesConnection = closesConnection
        self.route = route
    }

    /// Creates a response with `Data` content.
    public init(status: HTTPStatus = .ok, headers: HTTPHeaders = [:], body: Data) {
        self.init(status: status, headers: headers, body: [UInt8](body))
    }

    /// A `text/plain; charset=utf-8` response.
    public static func text(_ text: String, status: HTTPStatus = .ok) -> HTTPResponse {
        HTTPResponse(status: status, headers: ["Content-Type": "text/plain; charset=utf-8"], body: Array(text.utf8))
    }

    /// An `application/json` response with already encoded content.
    public static func json(_ data: Data, status: HTTPStatus = .ok) -> HTTPResponse {
        HTTPResponse(status: status, headers: ["Content-Type": "application/json"], body: data)
    }

    /// An `application/json` response with already encoded bytes.
    public static func json(_ bytes: [UInt8], status: HTTPStatus = .ok) -> HTTPResponse {
        HTTPResponse(status: status, headers: ["Content-Type": "application/json"], body: bytes)
    }

    /// An `application/json` response encoding `value`.
    ///
    /// - Throws: the encoder's error.
    public static func json(encoding value: some Encodable, status: HTTPStatus = .ok, encoder: JSONEncoder = JSONEncoder()) throws -> HTTPResponse {
        json(try encoder.encode(value), status: status)
    }
}
