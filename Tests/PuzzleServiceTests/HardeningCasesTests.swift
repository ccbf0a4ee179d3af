import Dispatch
import Foundation
import Glibc
import Jigsaw
import PuzzleService
import Testing

/// Measured defects of the hardening work, end to end over sockets, where the other suites check
/// them only a layer below (the work gate alone, the HTTP server with a stand-in handler).
@Suite("Hardening cases end to end", .serialized)
struct HardeningCasesTests {
    /// Waits (bounded by a count of short sleeps, not asserted as a duration) until `condition` holds.
    private static func eventually(_ condition: () -> Bool) -> Bool {
        for _ in 0..<2000 {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.005)
        }
        return condition()
    }

    /// Opens a connection to the port and sends `bytes` in full, returning the open descriptor.
    private static func sendAll(_ bytes: [UInt8], port: Int) throws -> Int32 {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw ClientFailure.connect(errno) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(descriptor)
            throw ClientFailure.connect(errno)
        }
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent <= 0 { break }
            offset += sent
        }
        return descriptor
    }

    /// Sends `request` while the only work slot is held, waits until it queues, closes the
    /// connection, then frees the slot and waits until the gate has dropped the abandoned request.
    private static func abandonWhileQueued(_ request: [UInt8], port: Int, service: JigsawService) throws {
        let release = DispatchSemaphore(value: 0), done = DispatchGroup()
        holdWorkSlot(service.workGate, until: release, done: done)
        let descriptor = try sendAll(request, port: port)
        #expect(eventually { service.workGate.occupancy.waiting == 1 })
        close(descriptor)
        release.signal()
        done.wait()
        #expect(eventually { service.workGate.abandonedCount == 1 })
    }

    @Test("case 4: a scramble whose client closes while it waits in the work queue is never computed", .timeLimit(.minutes(1)))
    func abandonedScrambleIsNotComputed() throws {
        let configuration = ServiceConfiguration(storeCapacity: 8, seed: 1, concurrentWork: 1, workQueueLength: 4)
        try withService(models: [try intensityModel(grid: 2)], configuration: configuration) { port, service in
            let png = try PNG.encode(scrambledImage(grid: 2, permutation: [0, 1, 2, 3], width: 28, height: 28))
            let head = "POST /v1/scramble?grid=2&seed=3 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                + "Content-Length: \(png.count)\r\n\r\n"
            try Self.abandonWhileQueued(Array(head.utf8) + png, port: port, service: service)
            let metrics = try get("/metrics", port: port).text
            #expect(metrics.contains("jigsaw_work_abandoned_total 1"))
            #expect(metrics.contains("jigsaw_scrambles_total 0"), "the scramble was computed")
            #expect(metrics.contains("jigsaw_puzzle_store_entries 0"), "a puzzle was stored")
            // A client that stays gets its scramble as before.
            let reply = try request("POST", "/v1/scramble?grid=2&seed=3", port: port, headers: ["Content-Type": "image/png"], body: png)
            #expect(reply.status == 200)
            #expect(try get("/metrics", port: port).text.contains("jigsaw_scrambles_total 1"))
        }
    }

    @Test("case 4: a solve whose client closes while it waits in the work queue is never computed", .timeLimit(.minutes(1)))
    func abandonedSolveIsNotComputed() throws {
        let configuration = ServiceConfiguration(storeCapacity: 8, seed: 1, concurrentWork: 1, workQueueLength: 4)
        try withService(models: [try intensityModel(grid: 2)], configuration: configuration) { port, service in
            let piece = Array(repeating: Array(repeating: 0.5, count: 14), count: 14)
            let body = try JSONSerialization.data(withJSONObject: ["pieces": Array(repeating: piece, count: 4)])
            let head = "POST /v1/solve HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                + "Content-Length: \(body.count)\r\n\r\n"
            try Self.abandonWhileQueued(Array(head.utf8) + [UInt8](body), port: port, service: service)
            let metrics = try get("/metrics", port: port).text
            #expect(metrics.contains("jigsaw_work_abandoned_total 1"))
            let solved = metrics.split(separator: "\n").filter { $0.hasPrefix("jigsaw_puzzles_solved_total{") }
            #expect(!solved.isEmpty && solved.allSatisfy { $0.hasSuffix(" 0") }, "the solve was computed: \(solved)")
            #expect(metrics.contains("jigsaw_puzzle_store_entries 0"), "a puzzle was stored")
        }
    }
}
