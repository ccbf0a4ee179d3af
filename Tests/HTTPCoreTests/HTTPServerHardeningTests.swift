import Dispatch
import Foundation
import HTTPCore
import Testing
import TestSupport

@Suite("HTTP server under hostile load: per-client cap, body budget, cheap lane, abandoned requests", .serialized)
struct HTTPServerHardeningTests {
    @Test("one client address cannot take every connection; another still gets in", .timeLimit(.minutes(1)))
    func perClientCap() throws {
        let server = try startServer { $0.maxConnectionsPerClient = 3 }
        defer { server.shutdown(graceful: false) }
        var held: [RawClient] = []
        for _ in 0..<3 {
            let client = try RawClient(port: server.port)
            client.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try client.readResponse().status == 200)
            held.append(client)
        }
        let fourth = try RawClient(port: server.port)
        let refused = try fourth.readResponse()
        #expect(refused.status == 503)
        #expect(refused.headers["retry-after"] == "1")
        #expect(refused.text == "this client address already holds 3 connections, the most one client may open; close one or retry shortly\n")
        let other = try RawClient(port: server.port, source: "127.0.0.2")
        other.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try other.readResponse().status == 200)
        // Once one of the first three leaves, the first address gets a connection again.
        held.removeFirst()
        var admitted = false
        for _ in 0..<200 where !admitted {
            let again = try RawClient(port: server.port)
            again.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            admitted = (try? again.readResponse().status) == 200
            if !admitted { Thread.sleep(forTimeInterval: 0.01) }
        }
        #expect(admitted)
    }

    @Test("content beyond the body memory budget gets 503 before it is read; the budget frees when a request ends",
          .timeLimit(.minutes(1)))
    func bodyBudget() throws {
        let server = try startServer {
            $0.bodyMemoryBudget = 1 << 20
            $0.limits = HTTPLimits(bodyBytes: 2 << 20)
        }
        defer { server.shutdown(graceful: false) }
        let holder = try RawClient(port: server.port)
        holder.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 800000\r\n\r\n")
        holder.send([UInt8](repeating: 1, count: 1000))
        // The holder's 800,000 bytes are reserved as soon as its head is read.
        var refused: RawClient.Response?
        for _ in 0..<200 {
            let other = try RawClient(port: server.port)
            other.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 500000\r\n\r\n")
            let response = try other.readResponse()
            if response.status == 503 { refused = response; break }
            Thread.sleep(forTimeInterval: 0.01)
        }
        #expect(refused?.status == 503)
        #expect(refused?.headers["retry-after"] == "1")
        #expect(refused?.text == "the server's memory for request content in flight (1 MiB) is in use; retry shortly\n")
        #expect(server.metrics().rejectedBodies >= 1)
        // A small body still fits beside the holder.
        let small = try RawClient(port: server.port)
        small.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        #expect(try small.readResponse().text == "hello")
        holder.send([UInt8](repeating: 1, count: 799_000))
        #expect(try holder.readResponse().body.count == 800_000)
        let after = try RawClient(port: server.port)
        after.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 500000\r\n\r\n")
        after.send([UInt8](repeating: 2, count: 500_000))
        #expect(try after.readResponse().status == 200)
    }

    @Test("cheap requests are answered while every worker is stuck in heavy work", .timeLimit(.minutes(1)))
    func cheapLane() throws {
        let gate = DispatchSemaphore(value: 0), entered = DispatchSemaphore(value: 0)
        let server = try startServer(router: testRouter(gate: gate, entered: entered)) { configuration in
            configuration.isCheap = { $0.path == "/hello" }
        }
        defer {
            server.shutdown(graceful: false)
        }
        // More blocked handlers than Dispatch keeps worker threads for.
        let blocked = 160
        var clients: [RawClient] = []
        for _ in 0..<blocked {
            let client = try RawClient(port: server.port, timeout: 30)
            client.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            clients.append(client)
        }
        entered.wait()
        let cheap = try RawClient(port: server.port, timeout: 10)
        cheap.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try cheap.readResponse().text == "hello")
        for _ in 0..<blocked { gate.signal() }
        for client in clients { #expect(try client.readResponse().text == "finally") }
    }

    @Test("a handler sees that its client has gone", .timeLimit(.minutes(1)))
    func abandonment() throws {
        let entered = DispatchSemaphore(value: 0), proceed = DispatchSemaphore(value: 0)
        let seen = Locked<[Bool]>([])
        var router = HTTPRouter()
        router.get("/watch") { request in
            seen.update { $0.append(request.isAbandoned()) }
            entered.signal()
            proceed.wait()
            seen.update { $0.append(request.isAbandoned()) }
            entered.signal()
            return .text("done")
        }
        router.get("/hello") { _ in .text("hello") }
        let server = try startServer(router: router)
        defer { server.shutdown(graceful: false) }
        var client: RawClient? = try RawClient(port: server.port)
        client?.send("GET /watch HTTP/1.1\r\nHost: x\r\n\r\n")
        entered.wait()
        client = nil  // closes the socket
        Thread.sleep(forTimeInterval: 0.05)
        proceed.signal()
        entered.wait()
        #expect(seen.value == [false, true])
        // A pipelined request still waiting to be read is not mistaken for a departure.
        let live = try RawClient(port: server.port)
        live.send("GET /watch HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        entered.wait()
        proceed.signal()
        entered.wait()
        #expect(try live.readResponse().text == "done")
        #expect(try live.readResponse().text == "hello")
        #expect(seen.value == [false, true, false, false])
    }
}
