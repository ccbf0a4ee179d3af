/// A value that knows the response status it should produce when it ends a request.
public protocol HTTPStatusConvertible {
    /// The status a response reporting this value carries.
    var status: HTTPStatus { get }
}

/// Why bytes from a client are not an acceptable HTTP/1.1 request (RFC 9112).
///
/// Each case maps to the status a server answers with (`status`); after any of them the
/// connection is closed, because the framing of what follows can no longer be trusted
/// (RFC 9112 §9.6 / §11.2).
public enum HTTPParseError: Error, Sendable, Equatable, HTTPStatusConvertible, CustomStringConvertible {
    /// The request line is not `method SP request-target SP HTTP-version` (RFC 9112 §3). → 400
    case invalidRequestLine(reason: String)
    /// The request line is longer than the limit; almost always a long target (RFC 9112 §3). → 414
    case requestLineTooLong(limit: Int)
    /// The method is a valid token that this server does not implement (RFC 9110 §9.1). → 501
    case unsupportedMethod(String)
    /// A well-formed version other than HTTP/1.0 and HTTP/1.1 (RFC 9110 §15.6.6). → 505
    case unsupportedVersion(String)
    /// The request target is not origin-form, absolute-form or `*`, or its percent-encoding
    /// is invalid (RFC 9112 §3.2, RFC 3986 §2.1). → 400
    case invalidRequestTarget(String)
    /// A field line is malformed: no colon, empty or invalid name, whitespace before the colon,
    /// or a control character in the value (RFC 9112 §5, RFC 9110 §5.5). → 400
    case invalidHeaderField(reason: String)
    /// A field line starts with whitespace (obsolete line folding, RFC 9112 §5.2). → 400
    case obsoleteLineFolding
    /// A CR not followed by LF (RFC 9112 §2.2). → 400
    case bareCarriageReturn
    /// The header (or trailer) section exceeds the byte limit (RFC 6585 §5). → 431
    case headerSectionTooLarge(limit: Int)
    /// The header (or trailer) section has more field lines than the limit (RFC 6585 §5). → 431
    case tooManyHeaderFields(limit: Int)
    /// An HTTP/1.1 request without Host, or with several or an invalid one (RFC 9112 §3.2). → 400
    case invalidHost(reason: String)
    /// Both Transfer-Encoding and Content-Length: refused as request smuggling risk
    /// (RFC 9112 §6.1, §11.2). → 400
    case conflictingFraming
    /// A Content-Length value that is not 1*DIGIT (RFC 9110 §8.6). → 400
    case invalidContentLength(String)
    /// Several Content-Length values that differ (RFC 9112 §6.3 item 5). → 400
    case conflictingContentLengths([String])
    /// A Transfer-Encoding list whose final coding is not `chunked`, or that repeats it, or a
    /// Transfer-Encoding in an HTTP/1.0 request (RFC 9112 §6.1, §6.3 item 4). → 400
    case invalidTransferEncoding(String)
    /// A transfer coding other than `chunked` (RFC 9112 §6.1). → 501
    case unsupportedTransferCoding(String)
    /// The declared or received content exceeds the limit (RFC 9110 §15.5.14). → 413
    case bodyTooLarge(limit: Int)
    /// A chunk-size line that is not `1*HEXDIG [chunk-ext]` (RFC 9112 §7.1). → 400
    case invalidChunkSize(String)
    /// Chunk data not followed by CRLF (RFC 9112 §7.1). → 400
    case invalidChunkTerminator
    /// The connection ended inside a request (RFC 9112 §8). → 400
    case truncatedMessage

    public var status: HTTPStatus {
        switch self {
        case .invalidRequestLine, .invalidRequestTarget, .invalidHeaderField, .obsoleteLineFolding,
             .bareCarriageReturn, .invalidHost, .conflictingFraming, .invalidContentLength,
             .conflictingContentLengths, .invalidTransferEncoding, .invalidChunkSize,
             .invalidChunkTerminator, .truncatedMessage:
            .badRequest
        case .requestLineTooLong: .uriTooLong
        case .unsupportedMethod, .unsupportedTransferCoding: .notImplemented
        case .unsupportedVersion: .httpVersionNotSupported
        case .headerSectionTooLarge, .tooManyHeaderFields: .requestHeaderFieldsTooLarge
        case .bodyTooLarge: .contentTooLarge
        }
    }

    public var description: String {
        switch self {
        case .invalidRequestLine(let reason): "invalid request line: \(reason)"
        case .requestLineTooLong(let limit): "request line longer than \(limit) bytes"
        case .unsupportedMethod(let method): "method \(method) is not implemented"
        case .unsupportedVersion(let version): "version \(version) is not supported"
        case .invalidRequestTarget(let target): "invalid request target \(target)"
        case .invalidHeaderField(let reason): "invalid header field: \(reason)"
        case .obsoleteLineFolding: "obsolete line folding is not accepted"
        case .bareCarriageReturn: "bare CR in the message head"
        case .headerSectionTooLarge(let limit): "header section larger than \(limit) bytes"
        case .tooManyHeaderFields(let limit): "more than \(limit) header fields"
        case .invalidHost(let reason): "invalid Host: \(reason)"
        case .conflictingFraming: "both Transfer-Encoding and Content-Length"
        case .invalidContentLength(let value): "invalid Content-Length \(value)"
        case .conflictingContentLengths(let values): "conflicting Content-Length values \(values.joined(separator: ", "))"
        case .invalidTransferEncoding(let value): "invalid Transfer-Encoding \(value)"
        case .unsupportedTransferCoding(let coding): "transfer coding \(coding) is not implemented"
        case .bodyTooLarge(let limit): "content larger than \(limit) bytes"
        case .invalidChunkSize(let line): "invalid chunk size \(line)"
        case .invalidChunkTerminator: "chunk data not followed by CRLF"
        case .truncatedMessage: "connection closed inside a request"
        }
    }
}
