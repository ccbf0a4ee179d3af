import Foundation
import Glibc

/// An entity tag (RFC 9110 §8.8.3): an opaque quoted string, strong or weak (`W/"…"`).
public struct HTTPEntityTag: Sendable, Hashable {
    /// The characters between the quotes.
    public var opaque: String
    /// Whether the tag is weak (`W/` prefix).
    public var isWeak: Bool

    /// Creates a tag. `opaque` must consist of `etagc` characters (no `"`, no control
    /// characters, no spaces).
    public init(opaque: String, isWeak: Bool = false) {
        precondition(opaque.utf8.allSatisfy(HTTPEntityTag.isTagCharacter), "entity tag \(opaque) has characters outside etagc")
        self.opaque = opaque
        self.isWeak = isWeak
    }

    /// Parses one `entity-tag` (`"xyzzy"` or `W/"xyzzy"`), or `nil` when malformed.
    public init?(parsing text: String) {
        var scalars = Substring(text.trimmingWhitespace())
        var weak = false
        if scalars.hasPrefix("W/") {
            weak = true
            scalars = scalars.dropFirst(2)
        }
        guard scalars.count >= 2, scalars.first == "\"", scalars.last == "\"" else { return nil }
        let inner = scalars.dropFirst().dropLast()
        guard inner.utf8.allSatisfy(HTTPEntityTag.isTagCharacter) else { return nil }
        opaque = String(inner)
        isWeak = weak
    }

    /// The field value: `"opaque"` or `W/"opaque"`.
    public var headerValue: String { (isWeak ? "W/" : "") + "\"" + opaque + "\"" }

    /// A strong tag from a content hash: 64-bit FNV-1a of the bytes and their length, in hex.
    ///
    /// A content hash rather than size and modification time, so replicas behind a load
    /// balancer (and a redeploy of the same files) give the same tag for the same bytes.
    public static func strong(hashing bytes: [UInt8]) -> HTTPEntityTag {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        bytes.withUnsafeBufferPointer { buffer in
            for byte in buffer {
                hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
            }
        }
        return HTTPEntityTag(opaque: String(hash, radix: 16) + "-" + String(bytes.count, radix: 16))
    }

    /// Weak comparison (RFC 9110 §8.8.3.2): the opaque parts are equal, weak or not.
    public func matchesWeakly(_ other: HTTPEntityTag) -> Bool { opaque == other.opaque }

    /// Strong comparison: both strong and equal.
    public func matchesStrongly(_ other: HTTPEntityTag) -> Bool { !isWeak && !other.isWeak && opaque == other.opaque }

    /// `etagc = "!" / %x23-7E / obs-text` (RFC 9110 §8.8.3).
    static func isTagCharacter(_ byte: UInt8) -> Bool {
        byte == 0x21 || (byte >= 0x23 && byte <= 0x7E) || byte >= 0x80
    }
}

/// The condition of an `If-None-Match` field (RFC 9110 §13.1.2).
public enum HTTPEntityTagCondition: Sendable, Equatable {
    /// `*`: any current representation.
    case any
    /// A list of tags.
    case tags([HTTPEntityTag])

    /// Parses the values of every field line of the field, or `nil` when nothing in them is a
    /// well-formed tag (the field is then ignored, as RFC 9110 §13.1 lets a server do with an
    /// invalid condition).
    ///
    /// Tags may contain commas, so the list is scanned quote by quote rather than split on `,`;
    /// malformed elements are skipped.
    public init?(fieldValues: [String]) {
        var tags: [HTTPEntityTag] = []
        var sawStar = false
        for value in fieldValues {
            let bytes = Array(value.utf8)
            var index = 0
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: ",") {
                    index += 1
                    continue
                }
                if byte == UInt8(ascii: "*") {
                    sawStar = true
                    index += 1
                    continue
                }
                var start = index
                var weak = false
                if byte == UInt8(ascii: "W"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "/") {
                    weak = true
                    start = index + 2
                }
                guard start < bytes.count, bytes[start] == UInt8(ascii: "\"") else {
                    // Not a tag: skip to the next comma.
                    while index < bytes.count, bytes[index] != UInt8(ascii: ",") { index += 1 }
                    continue
                }
                var end = start + 1
                while end < bytes.count, bytes[end] != UInt8(ascii: "\"") { end += 1 }
                guard end < bytes.count else { break }
                let inner = bytes[(start + 1)..<end]
                if inner.allSatisfy(HTTPEntityTag.isTagCharacter) {
                    tags.append(HTTPEntityTag(opaque: String(decoding: inner, as: UTF8.self), isWeak: weak))
                }
                index = end + 1
            }
        }
        if sawStar {
            self = .any
        } else if tags.isEmpty {
            return nil
        } else {
            self = .tags(tags)
        }
    }

    /// Whether a representation with this tag (or none) matches, by weak comparison.
    public func matches(_ current: HTTPEntityTag?) -> Bool {
        switch self {
        case .any: return true
        case .tags(let tags): return current.map { tag in tags.contains { $0.matchesWeakly(tag) } } ?? false
        }
    }
}

/// HTTP dates (RFC 9110 §5.6.7).
public enum HTTPDate {
    /// Formats an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
    public static func format(_ date: Date) -> String { HTTPResponseWriter.httpDate(date) }

    private static let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]

    /// Parses any of the three forms a recipient must accept: IMF-fixdate
    /// (`Sun, 06 Nov 1994 08:49:37 GMT`), the obsolete RFC 850 form
    /// (`Sunday, 06-Nov-94 08:49:37 GMT`, two-digit years read within 50 years of `now`, §5.6.7)
    /// and asctime (`Sun Nov  6 08:49:37 1994`). The weekday is not checked. `nil` when malformed.
    public static func parse(_ text: String, now: Date = Date()) -> Date? {
        let trimmed = text.trimmingWhitespace()
        guard trimmed.utf8.count <= 64 else { return nil }
        let words = trimmed.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        var day: Int?, month: Int?, year: Int?, time: [Int]?
        if words.count == 6, words[0].hasSuffix(","), words[5] == "GMT" {
            day = Int(digits: words[1], count: 2)
            month = months.firstIndex(of: words[2].lowercased()).map { $0 + 1 }
            year = Int(digits: words[3], count: 4)
            time = clock(words[4])
        } else if words.count == 4, words[0].hasSuffix(","), words[3] == "GMT" {
            let parts = words[1].split(separator: "-", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 3 else { return nil }
            day = Int(digits: parts[0], count: 2)
            month = months.firstIndex(of: parts[1].lowercased()).map { $0 + 1 }
            if let short = Int(digits: parts[2], count: 2) {
                var seconds = time_t(now.timeIntervalSince1970)
                var parts = tm()
                gmtime_r(&seconds, &parts)
                let current = Int(parts.tm_year) + 1900
                var candidate = current - current % 100 + short
                if candidate > current + 50 { candidate -= 100 }
                year = candidate
            }
            time = clock(words[2])
        } else if words.count == 5, !words[0].hasSuffix(",") {
            month = months.firstIndex(of: words[1].lowercased()).map { $0 + 1 }
            day = words[2].utf8.count <= 2 ? Int(digits: words[2], count: words[2].utf8.count) : nil
            time = clock(words[3])
            year = Int(digits: words[4], count: 4)
        }
        guard let day, let month, let year, let time, (1...31).contains(day), year >= 1970 else { return nil }
        guard time[0] < 24, time[1] < 60, time[2] <= 60 else { return nil }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(time[0])
        parts.tm_min = Int32(time[1])
        parts.tm_sec = Int32(time[2])
        let seconds = timegm(&parts)
        guard seconds != -1, parts.tm_mday == Int32(day) else { return nil }
        return Date(timeIntervalSince1970: TimeInterval(seconds))
    }

    /// `HH:MM:SS` as three numbers.
    private static func clock(_ text: String) -> [Int]? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3 else { return nil }
        let values = parts.compactMap { Int(digits: $0, count: 2) }
        return values.count == 3 ? values : nil
    }
}

private extension Int {
    /// Exactly `count` ASCII digits.
    init?(digits text: String, count: Int) {
        guard text.utf8.count == count, count > 0, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        self.init(text)
    }
}

/// Evaluation of `If-None-Match` and `If-Modified-Since` (RFC 9110 §13.1.2, §13.1.3, §13.2.2).
public enum HTTPConditionalRequest {
    /// Whether a GET or HEAD may be answered 304 Not Modified (RFC 9110 §15.4.5).
    ///
    /// Only GET and HEAD requests and 200 responses are considered. `If-None-Match` takes
    /// precedence: when present and well-formed, it alone decides (weak comparison, `*` matches
    /// any current representation) and `If-Modified-Since` is ignored (§13.2.2 steps 3–4); one
    /// with no well-formed element counts as absent. Else
    /// a valid `If-Modified-Since` not earlier than `Last-Modified` (whole seconds) means not
    /// modified; a malformed or future date is ignored (§13.1.3).
    public static func isNotModified(request: HTTPRequest, response: HTTPResponse, now: Date = Date()) -> Bool {
        guard request.method == .get || request.method == .head, response.status.code == 200 else { return false }
        let noneMatch = request.headers.values(for: "If-None-Match")
        if !noneMatch.isEmpty, let condition = HTTPEntityTagCondition(fieldValues: noneMatch) {
            let current = response.headers["ETag"].flatMap(HTTPEntityTag.init(parsing:))
            return condition.matches(current)
        }
        // Reached without If-None-Match, or with one so malformed that it is treated as absent.
        guard let since = request.headers["If-Modified-Since"].flatMap({ HTTPDate.parse($0, now: now) }),
              since <= now,
              let modified = response.headers["Last-Modified"].flatMap({ HTTPDate.parse($0, now: now) })
        else { return false }
        return modified.timeIntervalSince1970.rounded(.down) <= since.timeIntervalSince1970
    }

    /// The 304 for a response: no content, and of its fields only those a cache needs to
    /// update what it stored (RFC 9110 §15.4.5: `Cache-Control`, `Content-Location`, `Date`,
    /// `ETag`, `Expires`, `Vary`, plus `Last-Modified` and `Content-Encoding`), with the
    /// `Content-Length` the 200 would have had (§8.6).
    public static func notModified(from response: HTTPResponse) -> HTTPResponse {
        let kept = ["Cache-Control", "Content-Location", "Date", "ETag", "Expires", "Vary", "Last-Modified", "Content-Encoding"]
        var headers = HTTPHeaders()
        for field in response.headers where kept.contains(where: { HTTPHeaders.sameName($0, field.name) }) {
            headers.add(field)
        }
        headers["Content-Length"] = String(response.body.count)
        return HTTPResponse(status: .notModified, headers: headers, closesConnection: response.closesConnection, route: response.route)
    }
}
