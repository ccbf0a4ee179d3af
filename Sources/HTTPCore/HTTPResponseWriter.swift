import Foundation
import Glibc

/// Serialises responses to HTTP/1.1 bytes (RFC 9112 §4, §6, §7).
public enum HTTPResponseWriter {
    /// Size of the chunks a chunked body is cut into.
    static let chunkSize = 16 * 1024

    /// Serialises a response.
    ///
    /// The status line always says HTTP/1.1 (RFC 9110 §6.2: a server sends its highest
    /// conformant version). Framing follows RFC 9112 §6.3: no content and no `Content-Length`
    /// for 1xx and 204; for HEAD and 304 the `Content-Length` the GET would have (the body's
    /// size, or the handler's own `Content-Length` when it sent no body) and no content;
    /// otherwise `Content-Length`, or chunks when asked for and the peer speaks HTTP/1.1.
    /// Field names that are not tokens are dropped and CR, LF and NUL in values become spaces,
    /// so a handler cannot split the response.
    ///
    /// - Parameters:
    ///   - response: the response.
    ///   - requestMethod: the request's method (HEAD suppresses content); `nil` when the request
    ///     could not be parsed.
    ///   - requestVersion: the request's version (chunked only for HTTP/1.1).
    ///   - keepAlive: whether the connection stays open; `false` writes `Connection: close`,
    ///     `true` to an HTTP/1.0 peer writes `Connection: keep-alive`.
    ///   - date: the value of `Date` when the response has none.
    /// - Returns: the bytes to send.
    public static func serialize(
        _ response: HTTPResponse, requestMethod: HTTPMethod?, requestVersion: HTTPVersion,
        keepAlive: Bool, date: Date = Date()
    ) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256 + response.body.count)
        out.append(contentsOf: "HTTP/1.1 \(response.status.code) \(sanitise(response.status.reasonPhrase))\r\n".utf8)

        let status = response.status
        let isHead = requestMethod == .head
        let noContentLength = (100..<200).contains(status.code) || status.code == 204
        let sendsBody = !isHead && !status.forbidsBody
        let chunked = response.usesChunkedEncoding && requestVersion == .http1_1 && !noContentLength && status.code != 304

        var declaredLength: String?
        for field in response.headers {
            guard !field.name.isEmpty, field.name.utf8.allSatisfy(HTTPRequestParser.isTokenByte) else { continue }
            if HTTPHeaders.sameName(field.name, "Content-Length") {
                declaredLength = field.value
                continue
            }
            if HTTPHeaders.sameName(field.name, "Transfer-Encoding") || HTTPHeaders.sameName(field.name, "Connection") {
                continue
            }
            appendField(&out, field.name, sanitise(field.value))
        }
        if !response.headers.contains("Date") {
            appendField(&out, "Date", httpDate(date))
        }
        if !keepAlive {
            appendField(&out, "Connection", "close")
        } else if requestVersion == .http1_0 {
            appendField(&out, "Connection", "keep-alive")
        }
        if chunked {
            appendField(&out, "Transfer-Encoding", "chunked")
        } else if !noContentLength {
            let length: String
            if (isHead || status.code == 304) && response.body.isEmpty, let declaredLength,
               !declaredLength.isEmpty, declaredLength.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
                length = declaredLength
            } else {
                length = String(response.body.count)
            }
            appendField(&out, "Content-Length", length)
        }
        out.append(contentsOf: "\r\n".utf8)

        guard sendsBody else { return out }
        if chunked {
            var start = 0
            while start < response.body.count {
                let end = min(start + chunkSize, response.body.count)
                out.append(contentsOf: String(end - start, radix: 16).utf8)
                out.append(contentsOf: "\r\n".utf8)
                out.append(contentsOf: response.body[start..<end])
                out.append(contentsOf: "\r\n".utf8)
                start = end
            }
            out.append(contentsOf: "0\r\n\r\n".utf8)
        } else {
            out.append(contentsOf: response.body)
        }
        return out
    }

    /// Formats a date as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 §5.6.7).
    public static func httpDate(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let day = days[Int(parts.tm_wday) % 7]
        let month = months[Int(parts.tm_mon) % 12]
        return "\(day), \(two(parts.tm_mday)) \(month) \(parts.tm_year + 1900) \(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }

    private static func appendField(_ out: inout [UInt8], _ name: String, _ value: String) {
        out.append(contentsOf: name.utf8)
        out.append(contentsOf: ": ".utf8)
        out.append(contentsOf: value.utf8)
        out.append(contentsOf: "\r\n".utf8)
    }

    private static func sanitise(_ value: String) -> String {
        guard value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0 }) else { return value }
        return String(decoding: value.utf8.map { ($0 == 0x0D || $0 == 0x0A || $0 == 0) ? 0x20 : $0 }, as: UTF8.self)
    }
}
