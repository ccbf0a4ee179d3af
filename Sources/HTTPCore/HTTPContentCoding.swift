import GzipCoding
import Dispatch
import Foundation

/// The content codings this server can apply to a response (RFC 9110 §8.4.1).
public enum HTTPContentCoding: String, Sendable, Hashable, CaseIterable {
    /// No transformation.
    case identity
    /// gzip (RFC 1952; RFC 9110 §8.4.1.3).
    case gzip
}

/// A parsed `Accept-Encoding` field (RFC 9110 §12.5.3).
///
/// Each list element is a coding (or `*`) with an optional weight `;q=` (RFC 9110 §12.4.2:
/// `0`, `0.ddd`, `1` or `1.000`). Parsing never fails: an element that is not a token or whose
/// weight is malformed is dropped, as if the client had not sent it; other parameters are
/// ignored. `x-gzip` is read as `gzip` (RFC 9110 §8.4.1.3).
public struct HTTPAcceptEncoding: Sendable, Equatable {
    /// The well-formed elements in order: a lowercased coding or `*`, and its weight in 0...1.
    public let preferences: [(coding: String, quality: Double)]
    /// Whether the request carried the field at all.
    public let isPresent: Bool

    public static func == (lhs: HTTPAcceptEncoding, rhs: HTTPAcceptEncoding) -> Bool {
        lhs.isPresent == rhs.isPresent && lhs.preferences.elementsEqual(rhs.preferences) { $0 == $1 }
    }

    /// Parses the values of every `Accept-Encoding` field line of a request.
    public init(fieldValues: [String]) {
        isPresent = !fieldValues.isEmpty
        var parsed: [(String, Double)] = []
        for value in fieldValues {
            for element in value.split(separator: ",") {
                guard let preference = HTTPAcceptEncoding.parseElement(element) else { continue }
                parsed.append(preference)
            }
        }
        preferences = parsed
    }

    /// Parses the request's `Accept-Encoding` fields.
    public init(request: HTTPRequest) {
        self.init(fieldValues: request.headers.values(for: "Accept-Encoding"))
    }

    private static func parseElement(_ element: Substring) -> (String, Double)? {
        let parts = element.split(separator: ";", omittingEmptySubsequences: false)
        let coding = parts[0].trimmingWhitespace().lowercased()
        guard !coding.isEmpty, coding.utf8.allSatisfy(HTTPRequestParser.isTokenByte) else { return nil }
        var quality = 1.0
        for parameter in parts.dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard pair.count == 2 else {
                if parameter.trimmingWhitespace().isEmpty { continue }
                return nil
            }
            guard pair[0].trimmingWhitespace().lowercased() == "q" else { continue }
            guard let weight = parseQuality(pair[1].trimmingWhitespace()) else { return nil }
            quality = weight
        }
        return (coding == "x-gzip" ? "gzip" : coding, quality)
    }

    /// A weight `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )` (RFC 9110 §12.4.2).
    static func parseQuality(_ text: String) -> Double? {
        let bytes = Array(text.utf8)
        guard let first = bytes.first, first == UInt8(ascii: "0") || first == UInt8(ascii: "1") else { return nil }
        if bytes.count == 1 { return first == UInt8(ascii: "1") ? 1 : 0 }
        guard bytes[1] == UInt8(ascii: "."), bytes.count <= 5 else { return nil }
        let fraction = bytes[2...]
        guard fraction.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        if first == UInt8(ascii: "1") {
            return fraction.allSatisfy { $0 == UInt8(ascii: "0") } ? 1 : nil
        }
        var value = 0.0
        var scale = 0.1
        for digit in fraction {
            value += Double(digit - 0x30) * scale
            scale /= 10
        }
        return value
    }

    /// The weight the client gives a coding: its own element, else `*`'s, else `nil` (not
    /// mentioned). The first element for a coding wins.
    public func quality(of coding: HTTPContentCoding) -> Double? {
        if let own = preferences.first(where: { $0.coding == coding.rawValue }) { return own.quality }
        return preferences.first(where: { $0.coding == "*" })?.quality
    }

    /// The coding to send among those offered, `identity` when nothing better is acceptable.
    ///
    /// RFC 9110 §12.5.3: no field means any coding is acceptable, but a client that sends none
    /// (a plain `curl`) usually cannot decode one, so it gets `identity`; a coding with weight 0
    /// is unacceptable; `identity` is acceptable unless excluded (`identity;q=0`, or `*;q=0`
    /// without an `identity` element), and when it is not mentioned it ranks below every coding
    /// the client named. Among acceptable codings the highest weight wins, ties going to the
    /// compressing one. When every coding, `identity` included, is excluded the server still
    /// sends `identity` (the RFC lets it ignore the field rather than answer 415).
    public func preferredCoding(offering offered: [HTTPContentCoding] = [.gzip]) -> HTTPContentCoding {
        guard isPresent else { return .identity }
        let explicitIdentity = preferences.first(where: { $0.coding == HTTPContentCoding.identity.rawValue })?.quality
        let identity = explicitIdentity ?? 0.0005
        var best = HTTPContentCoding.identity
        var bestQuality = identity
        for coding in offered where coding != .identity {
            guard let weight = quality(of: coding), weight > 0 else { continue }
            if weight >= bestQuality {
                best = coding
                bestQuality = weight
            }
        }
        return best
    }
}

/// When and how responses are compressed.
///
/// A response is compressed when the request accepts gzip (``HTTPAcceptEncoding``), the response
/// has content of at least `minimumBytes`, no `Content-Encoding` yet, a status that carries
/// content, and a compressible media type (``isCompressible(contentType:)``). Every response that
/// could have been compressed gets `Vary: Accept-Encoding` (RFC 9110 §12.5.5), compressed or not,
/// so a shared cache keeps the two forms apart. A strong `ETag` becomes the tag of the gzip form
/// by a `-gzip` suffix: the two forms are different representations (RFC 9110 §8.8.3). A
/// response that has `Server-Timing` gets a `gzip` phase with the compression's milliseconds.
public struct HTTPCompression: Sendable {
    /// The smallest content compressed. Below about a kilobyte the answer fits in one TCP
    /// segment either way, so compressing saves no round trip and costs CPU.
    public var minimumBytes: Int
    /// zlib level 1...9.
    public var level: Int

    /// Creates a policy.
    public init(minimumBytes: Int = 1024, level: Int = 6) {
        precondition(minimumBytes >= 0 && (1...9).contains(level), "gzip minimum size or level out of range")
        self.minimumBytes = minimumBytes
        self.level = level
    }

    /// Whether content of this media type is worth compressing: text, JSON, JavaScript, XML,
    /// SVG and `+json`/`+xml` types. Never images other than SVG, audio, video or archives,
    /// which are compressed already.
    public static func isCompressible(contentType: String) -> Bool {
        let mediaType = contentType.split(separator: ";", maxSplits: 1).first.map { $0.trimmingWhitespace().lowercased() } ?? ""
        if mediaType.hasPrefix("text/") { return true }
        switch mediaType {
        case "application/json", "application/javascript", "application/xml", "application/x-ndjson",
             "application/wasm", "image/svg+xml":
            return true
        default:
            return mediaType.hasSuffix("+json") || mediaType.hasSuffix("+xml")
        }
    }

    /// Compresses the response if the policy and the request allow it.
    public func apply(to response: inout HTTPResponse, for request: HTTPRequest) {
        guard response.body.count >= minimumBytes, !response.status.forbidsBody, response.status.code != 206,
              !response.headers.contains("Content-Encoding"),
              let contentType = response.headers["Content-Type"], HTTPCompression.isCompressible(contentType: contentType)
        else { return }
        response.headers.addVary("Accept-Encoding")
        guard HTTPAcceptEncoding(request: request).preferredCoding(offering: [.gzip]) == .gzip else { return }
        let start = DispatchTime.now().uptimeNanoseconds
        response.body = Gzip.compress(response.body, level: level)
        response.headers["Content-Encoding"] = HTTPContentCoding.gzip.rawValue
        if let timing = response.headers["Server-Timing"] {
            // The handler timed its own phases; the compression is one more, after them.
            let milliseconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
            response.headers["Server-Timing"] = timing + ", gzip;dur=" + ServerTimingValue.milliseconds(milliseconds)
        }
        if let value = response.headers["ETag"], let tag = HTTPEntityTag(parsing: value), !tag.isWeak {
            response.headers["ETag"] = HTTPEntityTag(opaque: tag.opaque + "-gzip").headerValue
        }
    }
}

extension HTTPHeaders {
    /// Adds a field name to `Vary` unless it is listed already (RFC 9110 §12.5.5).
    public mutating func addVary(_ name: String) {
        let listed = tokens(for: "Vary")
        if listed.contains("*") || listed.contains(name.lowercased()) { return }
        self["Vary"] = (values(for: "Vary").filter { !$0.trimmingWhitespace().isEmpty } + [name]).joined(separator: ", ")
    }
}

/// The `dur` value of a `Server-Timing` metric (W3C Server Timing), in milliseconds with
/// three decimals, as `String(format: "%.3f")` would print it but without a locale-aware
/// formatter (that one cost about 4% of the server's CPU time under load).
public enum ServerTimingValue {
    public static func milliseconds(_ value: Double) -> String {
        guard value.isFinite, value >= 0 else { return "0.000" }
        let thousandths = (value * 1000).rounded()
        guard thousandths < 9e15 else { return String(value) }
        let whole = Int64(thousandths)
        let fraction = Int(whole % 1000)
        let digits = fraction < 10 ? "00\(fraction)" : fraction < 100 ? "0\(fraction)" : "\(fraction)"
        return "\(whole / 1000).\(digits)"
    }
}
