import Dispatch
import Foundation
import Glibc
import HTTPCore
import Testing
import TestSupport

/// A value shared between threads in tests.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value
    init(_ value: Value) { stored = value }
    var value: Value { lock.withLock { stored } }
    func update<T>(_ body: (inout Value) -> T) -> T { lock.withLock { body(&stored) } }
}

let bigBody = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }

func testRouter(gate: DispatchSemaphore? = nil, entered: DispatchSemaphore? = nil) -> HTTPRouter {
    var router = HTTPRouter()
    router.get("/hello") { _ in .text("hello") }
    router.get("/id/{n}") { .text($0.pathParameters["n"] ?? "?") }
    router.post("/echo") { HTTPResponse(status: .ok, headers: ["Content-Type": "application/octet-stream"], body: $0.body) }
    router.get("/big") { _ in HTTPResponse(body: bigBody) }
    router.get("/chunked") { _ in HTTPResponse(body: Array("chunked body".utf8), usesChunkedEncoding: true) }
    router.get("/slow") { _ in
        entered?.signal()
        gate?.wait()
        return .text("finally")
    }
    return router
}

func startServer(router: HTTPRouter = testRouter(), configure: (inout HTTPServerConfiguration) -> Void = { _ in }) throws -> HTTPServer {
    var configuration = HTTPServerConfiguration(
        host: "127.0.0.1", port: 0, headerTimeout: .seconds(5), bodyTimeout: .seconds(5), idleTimeout: .seconds(5),
        writeTimeout: .seconds(5), lingerTimeout: .milliseconds(200), shutdownTimeout: .seconds(5), accessLog: nil)
    configure(&configuration)
    let server = HTTPServer(configuration: configuration, router: router)
    try server.start()
    return server
}

@Suite("HTTP server over sockets", .serialized)
struct HTTPServerTests {
    @Test("binding port 0 exposes the real port and serves")
    func basic() throws {
        let server = try startServer()
        defer { server.shutdown() }
        #expect(server.port > 0)
        let client = try RawClient(port: server.port)
        client.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        let response = try client.readResponse()
        #expect(response.status == 200)
        #expect(response.text == "hello")
        #expect(response.headers["content-length"] == "5")
        #expect(response.headers["date"]?.hasSuffix(" GMT") == true)
        #expect(response.headers["connection"] == nil)
    }

    @Test("malformed requests get their exact status, the connection closes, and the server keeps serving", arguments: [
        ("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        ("BREW / HTTP/1.1\r\nHost: a\r\n\r\n", 501),
        ("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\n\r\n", 400),
        ("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400),
        ("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        ("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n", 400),
        ("GET /" + String(repeating: "a", count: 9000) + " HTTP/1.1\r\nHost: a\r\n\r\n", 414),
        ("GET / HTTP/1.1\r\nHost: a\r\nX: " + String(repeating: "b", count: 33 * 1024) + "\r\n\r\n", 431),
        ("GET / HTTP/1.1\r\nHost: a\r\n" + String(repeating: "X: 1\r\n", count: 101) + "\r\n", 431),
        ("\u{1}\u{2}\u{3} garbage \r\n\r\n", 400),
    ])
    func malformed(_ text: String, _ status: Int) throws {
        let server = try startServer()
        defer { server.shutdown() }
        let client = try RawClient(port: server.port)
        client.send(text)
        let response = try client.readResponse()
        #expect(response.status == status)
        #expect(response.headers["connection"] == "close")
        #expect(client.readsEndOfFile())
        let next = try RawClient(port: server.port)
        next.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try next.readResponse().text == "hello")
    }

    @Test("pipelined keep-alive requests are answered in order")
    func pipelining() throws {
        let server = try startServer()
        defer { server.shutdown() }
        let client = try RawClient(port: server.port)
        client.send("GET /id/1 HTTP/1.1\r\nHost: x\r\n\r\n"
                    + "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody"
                    + "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nch\r\n3;e=1\r\nunk\r\n0\r\n\r\n"
                    + "GET /big HTTP/1.1\r\nHost: x\r\n\r\n"
                    + "GET /id/5 HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try client.readResponse().text == "1")
        #expect(try client.readResponse().text == "body")
        #expect(try client.readResponse().text == "chunk")
        #expect(try client.readResponse().body == bigBody)
        #expect(try client.readResponse().text == "5")
        client.send("GET /chunked HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let last = try client.readResponse()
        #expect(last.headers["transfer-encoding"] == "chunked")
        #expect(last.text == "chunked body")
        #expect(last.headers["connection"] == "close")
        #expect(client.readsEndOfFile())
    }

    @Test("HEAD sends the GET headers without the body")
    func head() throws {
        let server = try startServer()
        defer { server.shutdown() }
        let client = try RawClient(port: server.port)
        client.send("HEAD /big HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        let head = try client.readResponse(forHead: true)
        #expect(head.status == 200)
        #expect(head.headers["content-length"] == String(bigBody.count))
        // Had the body been sent, this would read its first bytes instead of the next response.
        #expect(try client.readResponse().text == "hello")
    }

    @Test("404, and 405 with Allow")
    func notFoundAndMethodNotAllowed() throws {
        let server = try startServer()
        defer { server.shutdown() }
        let client = try RawClient(port: server.port)
        client.send("GET /missing HTTP/1.1\r\nHost: x\r\n\r\nDELETE /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try client.readResponse().status == 404)
        let notAllowed = try client.readResponse()
        #expect(notAllowed.status == 405)
        #expect(notAllowed.headers["allow"] == "POST, OPTIONS")
    }

    @Test("a 1 GiB Content-Length gets 413 and the connection closes without the body being read")
    func hugeBody() throws {
        let server = try startServer()
        defer { server.shutdown() }
        let client = try RawClient(port: server.port)
        client.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n\r\n" + String(repeating: "x", count: 1000))
        let response = try client.readResponse()
        #expect(response.status == 413)
        #expect(response.headers["connection"] == "close")
        #expect(client.readsEndOfFile())
    }

    @Test("Expect: 100-continue gets an interim response before the body")
    func expectContinue() throws {
        let server = try startServer()
        defer { server.shutdown() }
        let client = try RawClient(port: server.port)
        client.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        #expect(try client.readResponse().status == 100)
        client.send("12345")
        #expect(try client.readResponse().text == "12345")
    }

    @Test("50 concurrent clients × 20 keep-alive requests each")
    func concurrentClients() throws {
        let server = try startServer()
        defer { server.shutdown() }
        let failures = Locked<[String]>([])
        let group = DispatchGroup()
        let port = server.port
        for clientIndex in 0..<50 {
            group.enter()
            let thread = Thread {
                defer { group.leave() }
                do {
                    let client = try RawClient(port: port)
                    for requestIndex in 0..<20 {
                        let id = clientIndex * 1000 + requestIndex
                        if requestIndex % 2 == 0 {
                            client.send("GET /id/\(id) HTTP/1.1\r\nHost: x\r\n\r\n")
                        } else {
                            client.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: \(String(id).utf8.count)\r\n\r\n\(id)")
                        }
                        let response = try client.readResponse()
                        if response.status != 200 || response.text != String(id) {
                            failures.update { $0.append("client \(clientIndex) request \(requestIndex): \(response.status) \(response.text)") }
                        }
                    }
                } catch {
                    failures.update { $0.append("client \(clientIndex): \(error)") }
                }
            }
            thread.start()
        }
        #expect(group.wait(timeout: .now() + 60) == .success)
        #expect(failures.value.isEmpty, "\(failures.value.prefix(5))")
        #expect(server.metrics().requests.values.reduce(0, +) == 1000)
    }

    @Test("200 slow clients do not hold the server, and the header timeout closes them with 408")
    func slowClients() throws {
        let server = try startServer { $0.headerTimeout = .milliseconds(500) }
        defer { server.shutdown() }
        var slow: [RawClient] = []
        for index in 0..<200 {
            let client = try RawClient(port: server.port)
            client.send("GET /id/\(index) HT")
            slow.append(client)
        }
        let normal = try RawClient(port: server.port)
        normal.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try normal.readResponse().text == "hello")
        // Keep trickling: a byte per client must not extend the timeout.
        for client in slow { client.send("T") }
        var timedOut = 0
        for client in slow {
            if let response = try? client.readResponse(), response.status == 408, client.readsEndOfFile() {
                timedOut += 1
            }
        }
        #expect(timedOut == 200)
        #expect(server.metrics().timedOutConnections >= 200)
    }

    @Test("an idle keep-alive connection is closed after the idle timeout")
    func idleTimeout() throws {
        let server = try startServer { $0.idleTimeout = .milliseconds(200) }
        defer { server.shutdown() }
        let client = try RawClient(port: server.port)
        client.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try client.readResponse().status == 200)
        #expect(client.readsEndOfFile())
    }

    @Test("connections beyond the bound get 503 and are closed")
    func connectionBound() throws {
        let server = try startServer { $0.maxConnections = 2 }
        defer { server.shutdown() }
        let first = try RawClient(port: server.port)
        let second = try RawClient(port: server.port)
        for client in [first, second] {
            client.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try client.readResponse().status == 200)
        }
        let third = try RawClient(port: server.port)
        let refused = try third.readResponse()
        #expect(refused.status == 503)
        #expect(refused.headers["retry-after"] == "1")
        #expect(refused.text == "the server holds its maximum of 2 connections; retry shortly\n")
        #expect(third.readsEndOfFile())
        #expect(server.metrics().rejectedConnections == 1)
        #expect(server.metrics().openConnections == 2)
    }

    @Test("graceful shutdown stops accepting and drains an in-flight request")
    func gracefulShutdown() throws {
        let gate = DispatchSemaphore(value: 0)
        let entered = DispatchSemaphore(value: 0)
        let server = try startServer(router: testRouter(gate: gate, entered: entered))
        let port = server.port
        let inFlight = try RawClient(port: port)
        inFlight.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        let idle = try RawClient(port: port)
        idle.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try idle.readResponse().status == 200)
        #expect(entered.wait(timeout: .now() + 10) == .success)

        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            server.shutdown(graceful: true)
            done.signal()
        }
        // Wait until the listener is gone: connecting fails once it is closed.
        var refused = false
        for _ in 0..<100_000 {
            do { _ = try RawClient(port: port, timeout: 1) } catch { refused = true; break }
        }
        #expect(refused)
        #expect(idle.readsEndOfFile())
        #expect(done.wait(timeout: .now()) == .timedOut, "shutdown returned while a request was in flight")
        gate.signal()
        let response = try inFlight.readResponse()
        #expect(response.text == "finally")
        #expect(response.headers["connection"] == "close")
        #expect(done.wait(timeout: .now() + 10) == .success)
    }

    @Test("the access log sees one entry per request and metrics count by route and status")
    func accessLogAndMetrics() throws {
        let entries = Locked<[HTTPAccessLogEntry]>([])
        let server = try startServer { configuration in
            configuration.accessLog = { entry in entries.update { $0.append(entry) } }
        }
        defer { server.shutdown() }
        let client = try RawClient(port: server.port)
        client.send("GET /id/7 HTTP/1.1\r\nHost: x\r\n\r\nGET /missing HTTP/1.1\r\nHost: x\r\n\r\nGET /id/8 HTTP/1.1\r\nHost: x\r\n\r\n")
        for _ in 0..<3 { _ = try client.readResponse() }
        let bad = try RawClient(port: server.port)
        bad.send("GET / HTTP/3.0\r\n\r\n")
        #expect(try bad.readResponse().status == 505)
        #expect(bad.readsEndOfFile())

        let logged = entries.value
        #expect(logged.map(\.status) == [200, 404, 200, 505])
        #expect(logged.map(\.target) == ["/id/7", "/missing", "/id/8", "-"])
        #expect(logged.map(\.bytes) == [1, logged[1].bytes, 1, logged[3].bytes])
        #expect(logged.first?.line.contains("\"GET /id/7\" 200 1 ") == true)
        let metrics = server.metrics()
        #expect(metrics.requests[.init(route: "/id/{n}", method: "GET", status: 200)] == 2)
        #expect(metrics.requests[.init(route: nil, method: "GET", status: 404)] == 1)
        #expect(metrics.requests[.init(route: nil, method: "-", status: 505)] == 1)
        #expect(metrics.latencyBuckets.last == 4)
        let text = metrics.prometheusText()
        #expect(text.contains("http_requests_total{route=\"/id/{n}\",method=\"GET\",status=\"200\"} 2\n"))
        #expect(text.contains("http_request_duration_seconds_count{route=\"/id/{n}\",method=\"GET\",status_class=\"2xx\"} 2\n"))
        #expect(text.contains("http_request_duration_seconds_count{route=\"none\",method=\"-\",status_class=\"5xx\"} 1\n"))
    }
}
