import Foundation
import HTTPCore
import Testing

func request(_ method: HTTPMethod, _ target: String, version: HTTPVersion = .http1_1) throws -> HTTPRequest {
    try HTTPRequest(method: method, target: target, version: version, headers: ["Host": "test"])
}

struct TeapotError: Error, HTTPStatusConvertible {
    var status: HTTPStatus { HTTPStatus(code: 418, reasonPhrase: "I'm a teapot") }
}

func makeRouter() -> HTTPRouter {
    var router = HTTPRouter()
    router.get("/") { _ in .text("root") }
    router.get("/v1/puzzles/{id}") { .text("puzzle \($0.pathParameters["id"] ?? "?")") }
    router.get("/v1/puzzles/{id}/soft") { .text("soft \($0.pathParameters["id"] ?? "?") tau=\($0.queryParameters["tau"] ?? "-")") }
    router.post("/v1/solve") { .text("solved \($0.body.count)") }
    router.put("/v1/solve") { _ in .text("put") }
    router.get("/files/{path...}") { .text("file \($0.pathParameters["path"] ?? "?")") }
    router.get("/fail") { _ in throw TeapotError() }
    router.get("/crash") { _ in throw CocoaError(.fileNoSuchFile) }
    router.get("/gone") { _ in throw HTTPFailure.notFound(path: "/gone") }
    return router
}

@Suite("HTTP router and response writer")
struct HTTPRouterTests {
    @Test("routes with path parameters")
    func routing() throws {
        let router = makeRouter()
        let root = router.respond(to: try request(.get, "/"))
        #expect(String(decoding: root.body, as: UTF8.self) == "root")
        #expect(root.route == "/")
        let puzzle = router.respond(to: try request(.get, "/v1/puzzles/a%2Fb"))
        #expect(String(decoding: puzzle.body, as: UTF8.self) == "puzzle a/b")
        #expect(puzzle.route == "/v1/puzzles/{id}")
        let soft = router.respond(to: try request(.get, "/v1/puzzles/42/soft?tau=0.25"))
        #expect(String(decoding: soft.body, as: UTF8.self) == "soft 42 tau=0.25")
        let file = router.respond(to: try request(.get, "/files/css/site.css"))
        #expect(String(decoding: file.body, as: UTF8.self) == "file css/site.css")
    }

    @Test("404 for unknown paths, 405 with Allow for known paths", arguments: [
        (HTTPMethod.get, "/nope", 404, nil as String?),
        (.get, "/v1/puzzles", 404, nil),
        (.get, "/v1/puzzles/", 404, nil),
        (.get, "/v1/puzzles/1/soft/extra", 404, nil),
        (.delete, "/v1/solve", 405, "POST, PUT, OPTIONS"),
        (.post, "/v1/puzzles/7", 405, "GET, HEAD, OPTIONS"),
        (.get, "/fail", 418, nil),
        (.get, "/crash", 500, nil),
        (.get, "/gone", 404, nil),
    ])
    func errors(_ method: HTTPMethod, _ target: String, _ status: Int, _ allow: String?) throws {
        let response = makeRouter().respond(to: try request(method, target))
        #expect(response.status.code == status)
        #expect(response.headers["Allow"] == allow)
    }

    @Test("HEAD uses the GET route; OPTIONS lists the methods")
    func headAndOptions() throws {
        let router = makeRouter()
        let head = router.respond(to: try request(.head, "/v1/puzzles/9"))
        #expect(head.status == .ok)
        #expect(String(decoding: head.body, as: UTF8.self) == "puzzle 9")
        let options = router.respond(to: try request(.options, "/v1/solve"))
        #expect(options.status == .noContent)
        #expect(options.headers["Allow"] == "POST, PUT, OPTIONS")
    }

    @Test("a custom error renderer keeps the status and Allow")
    func customRenderer() throws {
        var router = makeRouter()
        router.errorRenderer = { failure in .json(Data("{\"error\":{\"code\":\(failure.status.code)}}".utf8), status: .ok) }
        let response = router.respond(to: try request(.delete, "/v1/puzzles/1"))
        #expect(response.status == .methodNotAllowed)
        #expect(response.headers["Allow"] == "GET, HEAD, OPTIONS")
        #expect(String(decoding: response.body, as: UTF8.self) == "{\"error\":{\"code\":405}}")
    }

    @Test("response serialisation: framing, HEAD, Connection, chunked")
    func writer() {
        let date = Date(timeIntervalSince1970: 784_111_777)
        let response = HTTPResponse(status: .ok, headers: ["Content-Type": "text/plain", "Content-Length": "999", "X-Bad": "a\r\nInjected: 1"], body: Array("hello".utf8))
        let get = String(decoding: HTTPResponseWriter.serialize(response, requestMethod: .get, requestVersion: .http1_1, keepAlive: true, date: date), as: UTF8.self)
        #expect(get == "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Bad: a  Injected: 1\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 5\r\n\r\nhello")
        let head = String(decoding: HTTPResponseWriter.serialize(response, requestMethod: .head, requestVersion: .http1_1, keepAlive: false, date: date), as: UTF8.self)
        #expect(head == "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Bad: a  Injected: 1\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nConnection: close\r\nContent-Length: 5\r\n\r\n")
        let old = String(decoding: HTTPResponseWriter.serialize(.text("x"), requestMethod: .get, requestVersion: .http1_0, keepAlive: true, date: date), as: UTF8.self)
        #expect(old.contains("\r\nConnection: keep-alive\r\n"))
        let noContent = String(decoding: HTTPResponseWriter.serialize(HTTPResponse(status: .noContent, body: [1, 2]), requestMethod: .get, requestVersion: .http1_1, keepAlive: true, date: date), as: UTF8.self)
        #expect(noContent == "HTTP/1.1 204 No Content\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n")

        let body = (0..<40_000).map { UInt8(truncatingIfNeeded: $0) }
        let chunked = HTTPResponseWriter.serialize(HTTPResponse(body: body, usesChunkedEncoding: true), requestMethod: .get, requestVersion: .http1_1, keepAlive: true, date: date)
        // Decode it with the request parser's chunked decoder, an independent path.
        var parser = HTTPRequestParser()
        let requestHead = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        let separator = chunked.firstRange(of: Array("\r\n\r\n".utf8)) ?? 0..<0
        let responseHead = String(decoding: chunked[..<separator.lowerBound], as: UTF8.self)
        #expect(responseHead.contains("Transfer-Encoding: chunked"))
        parser.append(Array(requestHead.utf8) + chunked[separator.upperBound...])
        if case .request(let decoded)? = try? parser.next() {
            #expect(decoded.body == body)
        } else {
            Issue.record("chunked body did not decode")
        }
    }

    @Test("static files: content types, index, traversal refused", arguments: [
        ("/", 200, "text/html; charset=utf-8"),
        ("/app.js", 200, "text/javascript; charset=utf-8"),
        ("/img/logo.svg", 200, "image/svg+xml"),
        ("/../secret.txt", 404, nil),
        ("/img/..%2f..%2fsecret.txt", 404, nil),
        ("/%2e%2e/secret.txt", 404, nil),
        ("/missing.css", 404, nil),
        ("/link.txt", 404, nil),
    ] as [(String, Int, String?)])
    func staticFiles(_ target: String, _ status: Int, _ contentType: String?) throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("httpcore-static-\(getpid())")
        let root = base.appendingPathComponent("public")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("img"), withIntermediateDirectories: true)
        try Data("<h1>hi</h1>".utf8).write(to: root.appendingPathComponent("index.html"))
        try Data("let x = 1".utf8).write(to: root.appendingPathComponent("app.js"))
        try Data("<svg/>".utf8).write(to: root.appendingPathComponent("img/logo.svg"))
        try Data("secret".utf8).write(to: base.appendingPathComponent("secret.txt"))
        try? FileManager.default.createSymbolicLink(atPath: root.appendingPathComponent("link.txt").path, withDestinationPath: base.appendingPathComponent("secret.txt").path)

        var router = HTTPRouter()
        router.fallback = HTTPStaticFiles(directory: root.path).handler
        let response = router.respond(to: try request(.get, target))
        #expect(response.status.code == status)
        #expect(response.headers["Content-Type"] == contentType || status != 200)
        #expect(response.body != Array("secret".utf8))
        let post = router.respond(to: try request(.post, "/app.js"))
        #expect(post.status == .methodNotAllowed)
        #expect(post.headers["Allow"] == "GET, HEAD, OPTIONS")
    }
}
