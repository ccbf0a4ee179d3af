import CZlib
import GzipCoding
import Foundation
import HTTPCore
import Testing

/// Inflates a gzip stream with zlib's own decoder (the independent reference for
/// `Gzip.compress`), or `nil` when zlib reports an error.
func gunzip(_ bytes: [UInt8]) -> [UInt8]? {
    var stream = z_stream()
    guard inflateInit2_(&stream, 16 + MAX_WBITS, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else { return nil }
    defer { inflateEnd(&stream) }
    var output: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 64 * 1024)
    var status: Int32 = Z_OK
    bytes.withUnsafeBufferPointer { input in
        stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
        stream.avail_in = UInt32(input.count)
        repeat {
            let produced: Int = chunk.withUnsafeMutableBufferPointer { out in
                stream.next_out = out.baseAddress
                stream.avail_out = UInt32(out.count)
                status = inflate(&stream, Z_NO_FLUSH)
                return out.count - Int(stream.avail_out)
            }
            output += chunk[0..<produced]
        } while status == Z_OK
    }
    return status == Z_STREAM_END ? output : nil
}

func makeRequest(_ method: HTTPMethod = .get, _ target: String = "/", headers: [(String, String)] = []) -> HTTPRequest {
    // Targets in these tests are literals in origin-form, which always parse.
    (try? HTTPRequest(method: method, target: target, headers: HTTPHeaders(headers)))
        ?? { preconditionFailure("test target \(target) does not parse") }()
}

@Suite("Accept-Encoding and gzip (RFC 9110 §12.5.3, §8.4.1.3)")
struct HTTPContentCodingTests {
    @Test("the coding chosen for an Accept-Encoding field", arguments: [
        ([String](), HTTPContentCoding.identity),          // no field: identity (a plain client)
        ([""], .identity),                                  // empty field: only identity
        (["gzip"], .gzip),
        (["GZIP"], .gzip),
        (["x-gzip"], .gzip),
        (["gzip, deflate, br, zstd"], .gzip),              // a browser
        (["br"], .identity),
        (["*"], .gzip),
        (["*;q=0"], .identity),
        (["gzip;q=0"], .identity),
        (["gzip;q=0, *"], .identity),                       // an explicit gzip element beats *
        (["*, gzip;q=0"], .identity),
        (["gzip;q=0.5"], .gzip),                            // identity, unnamed, ranks last
        (["gzip;q=0.5, identity"], .identity),              // identity named with a higher weight
        (["gzip;q=0.5, identity;q=0.5"], .gzip),            // ties go to the compressing coding
        (["identity"], .identity),
        (["identity;q=0, gzip;q=0"], .identity),            // nothing acceptable: identity anyway
        (["deflate", "gzip;q=0.8"], .gzip),                 // several field lines
        (["gzip ; q=1.000"], .gzip),
        (["gzip;Q=0.001"], .gzip),
        (["gzip;q=1.5"], .identity),                        // malformed weights drop the element
        (["gzip;q=abc"], .identity),
        (["gzip;q=0.1234"], .identity),
        (["gzip;q="], .identity),
        (["gzip;q"], .identity),
        (["gzip;q=-1"], .identity),
        (["gz\u{7F}ip"], .identity),
        (["\"gzip\""], .identity),
        ([",,, ,"], .identity),
        (["gzip;level=9"], .gzip),                          // unknown parameters are ignored
        (["gzip;;q=0.5"], .gzip),
        ([String(repeating: "gzip;q=0,", count: 2000)], .identity),
    ])
    func negotiation(fields: [String], expected: HTTPContentCoding) {
        #expect(HTTPAcceptEncoding(fieldValues: fields).preferredCoding() == expected, "\(fields)")
    }

    @Test("weights (RFC 9110 §12.4.2 qvalue)", arguments: [
        ("1", 1.0), ("1.", 1.0), ("1.0", 1.0), ("1.000", 1.0), ("0", 0.0), ("0.", 0.0), ("0.5", 0.5), ("0.125", 0.125),
    ] as [(String, Double)])
    func weights(text: String, expected: Double) {
        let parsed = HTTPAcceptEncoding(fieldValues: ["gzip;q=\(text)"]).quality(of: .gzip)
        #expect(parsed.map { abs($0 - expected) < 1e-12 } == true, "q=\(text)")
    }

    @Test("malformed weights are refused", arguments: ["1.001", "2", "0.1234", ".5", "", "0x1", "1e0", "+1", "0 .5", "١"])
    func malformedWeights(text: String) {
        #expect(HTTPAcceptEncoding(fieldValues: ["gzip;q=\(text)"]).quality(of: .gzip) == nil, "q=\(text)")
    }

    @Test("gzip output inflates back to the input, for empty, small, large and incompressible data", arguments: [0, 1, 100, 300_000])
    func roundTrip(size: Int) throws {
        var generator = SystemRandomNumberGenerator()
        let text = Array((0..<size).map { "piece \($0 % 97), " }.joined().utf8.prefix(size))
        let noise = (0..<size).map { _ in UInt8.random(in: 0...255, using: &generator) }
        for (label, input) in [("text", text), ("noise", noise)] {
            for level in [1, 6, 9] {
                let compressed = Gzip.compress(input, level: level)
                #expect(compressed.prefix(2) == [0x1F, 0x8B], "\(label) level \(level): gzip magic")
                #expect(gunzip(compressed) == input, "\(label) size \(size) level \(level)")
            }
        }
        #expect(Gzip.compress(text) == Gzip.compress(text), "deterministic (zero mtime)")
    }

    struct CompressionCase: Sendable, CustomTestStringConvertible {
        var name: String
        var contentType: String?
        var size: Int
        var acceptEncoding: String?
        var status: HTTPStatus = .ok
        var contentEncoding: String?
        var compressed: Bool
        var vary: Bool
        var testDescription: String { name }
    }

    @Test("which responses are compressed, and which say Vary: Accept-Encoding", arguments: [
        CompressionCase(name: "JSON", contentType: "application/json", size: 5000, acceptEncoding: "gzip", compressed: true, vary: true),
        CompressionCase(name: "HTML", contentType: "text/html; charset=utf-8", size: 5000, acceptEncoding: "gzip", compressed: true, vary: true),
        CompressionCase(name: "CSS", contentType: "text/css; charset=utf-8", size: 5000, acceptEncoding: "gzip", compressed: true, vary: true),
        CompressionCase(name: "JavaScript", contentType: "text/javascript; charset=utf-8", size: 5000, acceptEncoding: "gzip", compressed: true, vary: true),
        CompressionCase(name: "SVG", contentType: "image/svg+xml", size: 5000, acceptEncoding: "gzip", compressed: true, vary: true),
        CompressionCase(name: "problem+json", contentType: "application/problem+json", size: 5000, acceptEncoding: "gzip", compressed: true, vary: true),
        CompressionCase(name: "metrics text", contentType: "text/plain; version=0.0.4", size: 5000, acceptEncoding: "gzip", compressed: true, vary: true),
        CompressionCase(name: "a JSON error", contentType: "application/json", size: 5000, acceptEncoding: "gzip", status: .badRequest, compressed: true, vary: true),
        CompressionCase(name: "PNG", contentType: "image/png", size: 5000, acceptEncoding: "gzip", compressed: false, vary: false),
        CompressionCase(name: "JPEG", contentType: "image/jpeg", size: 5000, acceptEncoding: "gzip", compressed: false, vary: false),
        CompressionCase(name: "no type", contentType: nil, size: 5000, acceptEncoding: "gzip", compressed: false, vary: false),
        CompressionCase(name: "octet-stream", contentType: "application/octet-stream", size: 5000, acceptEncoding: "gzip", compressed: false, vary: false),
        CompressionCase(name: "below the threshold", contentType: "application/json", size: 1023, acceptEncoding: "gzip", compressed: false, vary: false),
        CompressionCase(name: "at the threshold", contentType: "application/json", size: 1024, acceptEncoding: "gzip", compressed: true, vary: true),
        CompressionCase(name: "client without the field", contentType: "application/json", size: 5000, acceptEncoding: nil, compressed: false, vary: true),
        CompressionCase(name: "client refusing gzip", contentType: "application/json", size: 5000, acceptEncoding: "gzip;q=0", compressed: false, vary: true),
        CompressionCase(name: "malformed field", contentType: "application/json", size: 5000, acceptEncoding: ";;q=;,\u{1}", compressed: false, vary: true),
        CompressionCase(name: "already encoded", contentType: "application/json", size: 5000, acceptEncoding: "gzip", contentEncoding: "br", compressed: false, vary: false),
        CompressionCase(name: "204", contentType: "application/json", size: 5000, acceptEncoding: "gzip", status: .noContent, compressed: false, vary: false),
    ])
    func policy(_ test: CompressionCase) throws {
        let body = Array(String(repeating: "{\"piece\": 12345}, ", count: test.size / 18 + 1).utf8.prefix(test.size))
        var response = HTTPResponse(status: test.status, body: body)
        if let type = test.contentType { response.headers["Content-Type"] = type }
        if let encoding = test.contentEncoding { response.headers["Content-Encoding"] = encoding }
        let request = makeRequest(headers: test.acceptEncoding.map { [("Accept-Encoding", $0)] } ?? [])
        HTTPCompression().apply(to: &response, for: request)
        #expect((response.headers["Content-Encoding"] == "gzip") == test.compressed)
        #expect(response.headers.tokens(for: "Vary").contains("accept-encoding") == test.vary)
        if test.compressed {
            #expect(response.body.count < body.count)
            #expect(gunzip(response.body) == body)
        } else {
            #expect(response.body == body)
        }
    }

    @Test("a strong ETag gets a -gzip suffix, a weak one stays; Vary keeps earlier names once")
    func entityTagAndVary() {
        let body = Array(String(repeating: "a", count: 4096).utf8)
        var strong = HTTPResponse(headers: ["Content-Type": "text/plain", "ETag": "\"abc\"", "Vary": "Origin"], body: body)
        HTTPCompression().apply(to: &strong, for: makeRequest(headers: [("Accept-Encoding", "gzip")]))
        #expect(strong.headers["ETag"] == "\"abc-gzip\"")
        #expect(strong.headers["Vary"] == "Origin, Accept-Encoding")
        var weak = HTTPResponse(headers: ["Content-Type": "text/plain", "ETag": "W/\"abc\"", "Vary": "accept-encoding"], body: body)
        HTTPCompression().apply(to: &weak, for: makeRequest(headers: [("Accept-Encoding", "gzip")]))
        #expect(weak.headers["ETag"] == "W/\"abc\"")
        #expect(weak.headers.values(for: "Vary") == ["accept-encoding"])
    }
}
