import Foundation
import Glibc
import HTTPCore
import Testing
import TestSupport

/// A directory of web files for the tests, made once per process.
enum WebFixture {
    static let root: String = {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("httpcore-conventions-\(getpid())")
        try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let files: [(String, [UInt8])] = [
            ("index.html", Array(("<!doctype html><title>t</title>" + String(repeating: "<p>piece</p>\n", count: 400)).utf8)),
            ("app.js", Array(String(repeating: "console.log('jigsaw');\n", count: 200).utf8)),
            ("tiny.css", Array("a{}".utf8)),
            ("photo.png", [0x89, 0x50, 0x4E, 0x47] + Array(repeating: 7, count: 5000)),
        ]
        for (name, bytes) in files {
            let path = directory.appendingPathComponent(name).path
            _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
            // A fixed past time, so If-Modified-Since tests do not depend on when the files were written.
            try? FileManager.default.setAttributes([.modificationDate: modified], ofItemAtPath: path)
        }
        return directory.path
    }()

    /// The files' modification time: Wed, 01 Jan 2025 00:00:00 GMT.
    static let modified = Date(timeIntervalSince1970: 1_735_689_600)

    static func contents(_ name: String) -> [UInt8] {
        [UInt8](FileManager.default.contents(atPath: root + "/" + name) ?? Data())
    }
}

func conventionsRouter() -> HTTPRouter {
    var router = testRouter()
    router.get("/v1/puzzles/{id}/soft") { request in
        HTTPResponse(headers: ["Content-Type": "application/json", "Server-Timing": "soft;dur=1"],
                     body: Array("{\"id\":\"\(request.pathParameters["id"] ?? "")\"}".utf8))
    }
    router.fallback = HTTPStaticFiles(directory: WebFixture.root).handler
    return router
}

/// One request on a fresh connection, its response read.
func exchange(_ port: Int, _ head: String) throws -> RawClient.Response {
    let client = try RawClient(port: port)
    client.send(head + "\r\n")
    return try client.readResponse(forHead: head.hasPrefix("HEAD "))
}

@Suite("HTTP conventions over sockets: static files, gzip, 304, OPTIONS, CORS, metrics", .serialized)
struct HTTPConventionsServerTests {
    @Test("static files carry a content-hash ETag, Last-Modified and Cache-Control by type")
    func validators() throws {
        let server = try startServer(router: conventionsRouter())
        defer { server.shutdown() }
        let page = try exchange(server.port, "GET / HTTP/1.1\r\nHost: x\r\n")
        #expect(page.status == 200)
        #expect(page.headers["etag"] == HTTPEntityTag.strong(hashing: WebFixture.contents("index.html")).headerValue)
        #expect(page.headers["cache-control"] == "no-cache")
        #expect(page.headers["last-modified"] == "Wed, 01 Jan 2025 00:00:00 GMT")
        let script = try exchange(server.port, "GET /app.js HTTP/1.1\r\nHost: x\r\n")
        #expect(script.headers["cache-control"] == "public, max-age=300")
        #expect(script.body == WebFixture.contents("app.js"))
        #expect(script.headers["content-encoding"] == nil, "no Accept-Encoding, no gzip")
    }

    @Test("conditional GET and HEAD of a static file", arguments: [
        ("If-None-Match: TAG", 304),
        ("If-None-Match: \"other\", TAG", 304),
        ("If-None-Match: *", 304),
        ("If-None-Match: \"other\"", 200),
        ("If-None-Match: \"other\"\r\nIf-Modified-Since: LATER", 200),   // If-None-Match takes precedence
        ("If-Modified-Since: LATER", 304),
        ("If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT", 200),
        ("If-Modified-Since: Wed, 01 Jan 2025 00:00:00 GMT", 304),
        ("If-Modified-Since: Tue, 31 Dec 2024 23:59:59 GMT", 200),
        ("If-Modified-Since: not a date", 200),
        ("If-None-Match: ,,,\"", 200),
        ("If-None-Match: W/ \"x", 200),
    ])
    func conditional(condition: String, status: Int) throws {
        let server = try startServer(router: conventionsRouter())
        defer { server.shutdown() }
        let first = try exchange(server.port, "GET /app.js HTTP/1.1\r\nHost: x\r\n")
        let tag = try #require(first.headers["etag"])
        let later = HTTPDate.format(Date().addingTimeInterval(-1))
        let field = condition.replacingOccurrences(of: "TAG", with: tag).replacingOccurrences(of: "LATER", with: later)
        for method in ["GET", "HEAD"] {
            let reply = try exchange(server.port, "\(method) /app.js HTTP/1.1\r\nHost: x\r\n\(field)\r\n")
            #expect(reply.status == status, "\(method) \(field)")
            #expect(reply.headers["etag"] == tag)
            if status == 304 || method == "HEAD" {
                #expect(reply.body.isEmpty)
            } else {
                #expect(reply.body == first.body)
            }
            if status == 304 {
                #expect(reply.headers["content-length"] == String(first.body.count), "the 200's length (RFC 9110 §8.6)")
                #expect(reply.headers["cache-control"] == "public, max-age=300")
            }
        }
    }

    @Test("gzip: compressed for a client that accepts it, never for PNG or tiny files, and 304 on the gzip tag")
    func gzipStatic() throws {
        let server = try startServer(router: conventionsRouter())
        defer { server.shutdown() }
        let plain = WebFixture.contents("index.html")
        let page = try exchange(server.port, "GET / HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip, deflate, br\r\n")
        #expect(page.headers["content-encoding"] == "gzip")
        #expect(page.headers["vary"] == "Accept-Encoding")
        #expect(page.headers["content-length"] == String(page.body.count))
        #expect(page.body.count < plain.count / 4)
        #expect(gunzip(page.body) == plain)
        let tag = try #require(page.headers["etag"])
        #expect(tag == HTTPEntityTag(opaque: HTTPEntityTag.strong(hashing: plain).opaque + "-gzip").headerValue)

        let head = try exchange(server.port, "HEAD / HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n")
        #expect(head.status == 200 && head.body.isEmpty)
        #expect(head.headers["content-length"] == String(page.body.count) && head.headers["content-encoding"] == "gzip")

        let again = try exchange(server.port, "GET / HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nIf-None-Match: \(tag)\r\n")
        #expect(again.status == 304 && again.headers["etag"] == tag)
        let identityTag = try exchange(server.port, "GET / HTTP/1.1\r\nHost: x\r\nIf-None-Match: \(tag)\r\n")
        #expect(identityTag.status == 200, "the gzip form's tag does not validate the identity form")
        #expect(identityTag.body == plain)

        let png = try exchange(server.port, "GET /photo.png HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n")
        #expect(png.headers["content-encoding"] == nil && png.headers["vary"] == nil)
        #expect(png.body == WebFixture.contents("photo.png"))
        let tiny = try exchange(server.port, "GET /tiny.css HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n")
        #expect(tiny.headers["content-encoding"] == nil && tiny.text == "a{}")
        let refused = try exchange(server.port, "GET / HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip;q=0, identity\r\n")
        #expect(refused.headers["content-encoding"] == nil && refused.body == plain)
        let malformed = try exchange(server.port, "GET / HTTP/1.1\r\nHost: x\r\nAccept-Encoding: ;q=;;,=,gzip;q=9,\r\n")
        #expect(malformed.status == 200 && malformed.body == plain)
    }

    @Test("OPTIONS answers 204 with Allow on routes and files alike", arguments: [
        ("/hello", 204, "GET, HEAD, OPTIONS"),
        ("/echo", 204, "POST, OPTIONS"),
        ("/v1/puzzles/abc/soft", 204, "GET, HEAD, OPTIONS"),
        ("/", 204, "GET, HEAD, OPTIONS"),
        ("/app.js", 204, "GET, HEAD, OPTIONS"),
        ("/missing.js", 404, nil),
    ] as [(String, Int, String?)])
    func options(path: String, status: Int, allow: String?) throws {
        let server = try startServer(router: conventionsRouter())
        defer { server.shutdown() }
        let reply = try exchange(server.port, "OPTIONS \(path) HTTP/1.1\r\nHost: x\r\n")
        #expect(reply.status == status)
        #expect(reply.headers["allow"] == allow)
        #expect(reply.body.isEmpty || status != 204)
        let delete = try exchange(server.port, "DELETE \(path) HTTP/1.1\r\nHost: x\r\n")
        #expect(delete.status == (status == 204 ? 405 : 404))
    }

    @Test("CORS with a configured origin: preflight, simple requests, exposed headers, other origins")
    func cors() throws {
        let policy = try HTTPCORSPolicy(allowedOrigins: ["https://app.example"])
        let server = try startServer(router: conventionsRouter()) { configuration in
            configuration.responsePolicy = HTTPResponsePolicy(cors: policy)
        }
        defer { server.shutdown() }
        let preflight = try exchange(server.port, "OPTIONS /echo HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\n"
                                         + "Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\n")
        #expect(preflight.status == 204)
        #expect(preflight.headers["access-control-allow-origin"] == "https://app.example")
        #expect(preflight.headers["access-control-allow-methods"] == "POST, OPTIONS")
        #expect(preflight.headers["access-control-allow-headers"]?.contains("Content-Type") == true)
        #expect(preflight.headers["access-control-max-age"] == "600")
        #expect(preflight.headers["vary"]?.contains("Origin") == true)

        let simple = try exchange(server.port, "GET /v1/puzzles/7/soft HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\n")
        #expect(simple.status == 200 && simple.headers["access-control-allow-origin"] == "https://app.example")
        #expect(simple.headers["access-control-expose-headers"]?.contains("Server-Timing") == true)

        let file = try exchange(server.port, "OPTIONS /app.js HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\nAccess-Control-Request-Method: GET\r\n")
        #expect(file.status == 204 && file.headers["access-control-allow-methods"] == "GET, HEAD, OPTIONS")

        for origin in ["https://evil.example", "null", "https://app.example/../", "https://app.example, https://app.example", String(repeating: "h", count: 4000)] {
            let other = try exchange(server.port, "OPTIONS /echo HTTP/1.1\r\nHost: x\r\nOrigin: \(origin)\r\nAccess-Control-Request-Method: POST\r\n")
            #expect(other.status == 204 && other.headers["allow"] == "POST, OPTIONS")
            #expect(other.headers.keys.allSatisfy { !$0.hasPrefix("access-control-") }, "\(origin.prefix(30))")
        }
        let plain = try exchange(server.port, "GET /hello HTTP/1.1\r\nHost: x\r\n")
        #expect(plain.headers["access-control-allow-origin"] == nil && plain.headers["vary"] == "Origin")
    }

    @Test("CORS is off by default: no CORS field for any origin")
    func corsOff() throws {
        let server = try startServer(router: conventionsRouter())
        defer { server.shutdown() }
        let reply = try exchange(server.port, "OPTIONS /echo HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\nAccess-Control-Request-Method: POST\r\n")
        #expect(reply.status == 204)
        #expect(reply.headers.keys.allSatisfy { !$0.hasPrefix("access-control-") })
    }

    @Test("the latency histogram is labelled by route pattern, method and status class; the exposition parses")
    func histogramLabels() throws {
        let server = try startServer(router: conventionsRouter())
        defer { server.shutdown() }
        for path in ["/v1/puzzles/a/soft", "/v1/puzzles/b/soft", "/id/1", "/app.js", "/nowhere", "/missing.css"] {
            _ = try exchange(server.port, "GET \(path) HTTP/1.1\r\nHost: x\r\n")
        }
        let text = server.metrics().prometheusText()
        let samples = try parseExposition(text)
        let counts = samples.filter { $0.name == "http_request_duration_seconds_count" }
        let soft = counts.first { $0.labels["route"] == "/v1/puzzles/{id}/soft" }
        #expect(soft?.labels == ["route": "/v1/puzzles/{id}/soft", "method": "GET", "status_class": "2xx"])
        #expect(soft?.value == 2)
        #expect(counts.first { $0.labels["route"] == "static" }?.value == 1)
        #expect(counts.first { $0.labels["route"] == "none" && $0.labels["status_class"] == "4xx" }?.value == 2,
                "unknown paths share one label value")
        #expect(!samples.contains { $0.labels["route"]?.contains("/v1/puzzles/a") == true }, "never the raw path")
        // Buckets are cumulative and end at the count.
        for count in counts {
            let buckets = samples.filter {
                $0.name == "http_request_duration_seconds_bucket" && $0.labels.filter { $0.key != "le" } == count.labels
            }
            #expect(buckets.count == HTTPServerMetrics.latencyBucketBounds.count + 1)
            #expect(zip(buckets, buckets.dropFirst()).allSatisfy { $0.value <= $1.value })
            #expect(buckets.last?.labels["le"] == "+Inf" && buckets.last?.value == count.value)
        }
    }
}

/// One sample of a Prometheus text exposition (format 0.0.4).
struct ExpositionSample: Equatable {
    var name: String
    var labels: [String: String]
    var value: Double
}

enum ExpositionError: Error {
    case malformed(String)
}

/// Parses `name{label="value",...} number` lines, checking every sample's family has `# TYPE`
/// (an independent reader of the format, not the writer's code).
func parseExposition(_ text: String) throws -> [ExpositionSample] {
    var typed: Set<String> = []
    var samples: [ExpositionSample] = []
    for line in text.split(separator: "\n").map(String.init) {
        if line.hasPrefix("# TYPE ") {
            let parts = line.split(separator: " ")
            guard parts.count == 4, ["counter", "gauge", "histogram", "summary", "untyped"].contains(String(parts[3])) else {
                throw ExpositionError.malformed(line)
            }
            typed.insert(String(parts[2]))
            continue
        }
        if line.hasPrefix("#") { continue }
        guard let match = line.wholeMatch(of: /([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? ([^ ]+)/) else { throw ExpositionError.malformed(line) }
        let name = String(match.1)
        var labels: [String: String] = [:]
        if let body = match.3 {
            for pair in String(body).matches(of: /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/) {
                labels[String(pair.1)] = String(pair.2)
            }
        }
        guard let value = Double(String(match.4)) ?? (match.4 == "+Inf" ? .infinity : nil) else { throw ExpositionError.malformed(line) }
        let family = ["_bucket", "_sum", "_count", "_total"].reduce(name) { $0.hasSuffix($1) && !typed.contains($0) ? String($0.dropLast($1.count)) : $0 }
        guard typed.contains(name) || typed.contains(family) else { throw ExpositionError.malformed("no TYPE for \(name)") }
        samples.append(ExpositionSample(name: name, labels: labels, value: value))
    }
    return samples
}
