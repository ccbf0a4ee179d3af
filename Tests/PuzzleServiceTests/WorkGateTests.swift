import Dispatch
import Foundation
import PuzzleService
import Testing

@Suite("The heavy-work admission queue")
struct WorkGateTests {
    private static func waitUntilWaiting(_ gate: WorkGate, _ count: Int) {
        while gate.occupancy.waiting < count { Thread.sleep(forTimeInterval: 0.001) }
    }

    @Test("beyond the queue a request is refused at once with overloaded", .timeLimit(.minutes(1)))
    func fullQueueSheds() throws {
        let gate = WorkGate(slots: 1, maximumWaiting: 0, maximumWait: .seconds(3600))
        let release = DispatchSemaphore(value: 0), done = DispatchGroup()
        holdWorkSlot(gate, until: release, done: done)
        #expect(throws: ServiceError.overloaded(reason: "the server is at capacity (1 requests working, 0 waiting)", retryAfter: 1)) {
            try gate.run { }
        }
        #expect(gate.shedCount == 1)
        release.signal()
        done.wait()
        #expect(try gate.run { 7 } == 7)
    }

    @Test("a request that waits past the deadline is refused", .timeLimit(.minutes(1)))
    func deadlineSheds() throws {
        let gate = WorkGate(slots: 1, maximumWaiting: 4, maximumWait: .milliseconds(20))
        let release = DispatchSemaphore(value: 0), done = DispatchGroup()
        holdWorkSlot(gate, until: release, done: done)
        do {
            try gate.run { Issue.record("ran while the only slot was held") }
            Issue.record("no error")
        } catch let error as ServiceError {
            #expect(error.code == "overloaded" && error.status == .serviceUnavailable)
        }
        #expect(gate.occupancy == (1, 0))
        release.signal()
        done.wait()
        #expect(gate.occupancy == (0, 0))
        #expect(try gate.run { "after" } == "after")
    }

    @Test("waiting requests get their slots in arrival order", .timeLimit(.minutes(1)))
    func firstComeFirstServed() throws {
        let gate = WorkGate(slots: 1, maximumWaiting: 16, maximumWait: .seconds(3600))
        let release = DispatchSemaphore(value: 0), done = DispatchGroup()
        holdWorkSlot(gate, until: release, done: done)
        let ran = Locked<[Int]>([])
        for index in 0..<6 {
            done.enter()
            Thread.detachNewThread {
                try? gate.run { ran.update { $0.append(index) } }
                done.leave()
            }
            Self.waitUntilWaiting(gate, index + 1)
        }
        release.signal()
        done.wait()
        #expect(ran.value == Array(0..<6))
    }

    @Test("a request that gave up does not block those behind it", .timeLimit(.minutes(1)))
    func expiredTicketIsSkipped() throws {
        let gate = WorkGate(slots: 1, maximumWaiting: 16, maximumWait: .milliseconds(30))
        let release = DispatchSemaphore(value: 0), done = DispatchGroup()
        holdWorkSlot(gate, until: release, done: done)
        // This one expires while the slot is held.
        #expect(throws: ServiceError.self) { try gate.run { } }
        release.signal()
        done.wait()
        for value in 0..<3 { #expect(try gate.run { value } == value) }
        #expect(gate.occupancy == (0, 0))
    }

    @Test("a request waiting outside the gate lends its slot", .timeLimit(.minutes(1)))
    func setAsideLendsTheSlot() throws {
        let gate = WorkGate(slots: 1, maximumWaiting: 4, maximumWait: .seconds(3600))
        let other = DispatchSemaphore(value: 0)
        let result = try gate.run {
            gate.setAside {
                // The only slot is free while the holder waits here: another request runs to the end.
                Thread.detachNewThread {
                    _ = try? gate.run { }
                    other.signal()
                }
                other.wait()
                return 5
            }
        }
        #expect(result == 5)
        #expect(gate.occupancy == (0, 0))
    }

    @Test("the service sheds a solve with 503 and Retry-After while health still answers", .timeLimit(.minutes(1)))
    func serviceShedsWithRetryAfter() throws {
        let configuration = ServiceConfiguration(storeCapacity: 8, seed: 1, concurrentWork: 1, workQueueLength: 0)
        try withService(models: [try intensityModel(grid: 2)], configuration: configuration) { port, service in
            let release = DispatchSemaphore(value: 0), done = DispatchGroup()
            holdWorkSlot(service.workGate, until: release, done: done)
            let piece = Array(repeating: Array(repeating: 0.5, count: 14), count: 14)
            let reply = try postJSON("/v1/solve", port: port, ["pieces": Array(repeating: piece, count: 4)])
            #expect(reply.status == 503)
            #expect(reply.errorCode == "overloaded")
            #expect(reply.headers["Retry-After"] ?? reply.headers["retry-after"] == "1", "\(reply.headers)")
            #expect(try get("/healthz", port: port).status == 200)
            #expect(try get("/metrics", port: port).text.contains("jigsaw_work_shed_total 1"))
            release.signal()
            done.wait()
            #expect(try postJSON("/v1/solve", port: port, ["pieces": Array(repeating: piece, count: 4)]).status == 200)
        }
    }
}
