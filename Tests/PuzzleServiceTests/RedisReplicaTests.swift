import Dispatch
import Foundation
import HTTPCore
import Jigsaw
import PuzzleService
import RESP
import TensorKit
import Testing
import TestSupport

/// Two replicas of the service (two `JigsawService`s, each with its own HTTP server and
/// connection pool) sharing one real `redis-server`.
@Suite("Replicas sharing Redis", .enabled(if: RedisServer.executable != nil, Comment(rawValue: RedisServer.skipReason)))
struct RedisReplicaTests {
    static let timeouts = RedisTimeouts(connect: .milliseconds(250), operation: .milliseconds(500), retryDelay: .milliseconds(100))
    /// Far above the store's timeouts (0.25 s connect + 0.5 s per command, a retry at most) and
    /// the work of a 2 × 2 puzzle, far below the client's 20 s receive timeout: a request that
    /// takes longer than this is a hang.
    static let requestBound = 3.0

    /// Runs `body` with the ports of two replicas that share the Redis `server`.
    static func withReplicas<Result>(_ server: RedisServer, _ body: (_ a: Int, _ b: Int) throws -> Result) throws -> Result {
        let model = try intensityModel(grid: 2)
        var servers: [HTTPServer] = []
        defer { for server in servers { server.shutdown(graceful: false) } }
        for seed in [UInt64(1), 2] {
            let store = RedisPuzzleStore(endpoint: RedisEndpoint(host: "127.0.0.1", port: server.port), timeToLive: .seconds(60),
                                         timeouts: timeouts)
            let service = JigsawService(registry: try ModelRegistry(models: [model]),
                                        configuration: ServiceConfiguration(seed: seed), store: store)
            let http = service.makeServer(configuration: HTTPServerConfiguration(
                host: "127.0.0.1", port: 0, headerTimeout: .seconds(10), bodyTimeout: .seconds(10), idleTimeout: .seconds(10),
                lingerTimeout: .milliseconds(200), shutdownTimeout: .seconds(10), accessLog: nil))
            try http.start()
            servers.append(http)
        }
        return try body(servers[0].port, servers[1].port)
    }

    static func puzzlePNG(seed: UInt64) throws -> [UInt8] {
        var generator = SeededGenerator(seed: seed)
        return try PNG.encode(scrambledImage(grid: 2, permutation: generator.permutation(4), width: 28, height: 28))
    }

    static func solve(port: Int, seed: UInt64) throws -> Reply {
        try request("POST", "/v1/solve", port: port, headers: ["Content-Type": "image/png"], body: try puzzlePNG(seed: seed))
    }

    @Test("a puzzle solved on replica A is served, soft at any τ, by replica B")
    func sharedPuzzles() throws {
        let redis = try RedisServer()
        try Self.withReplicas(redis) { a, b in
            let solved = try Self.solve(port: a, seed: 3)
            #expect(solved.status == 200, "\(solved.text)")
            let id = try #require(solved.json["id"] as? String)
            #expect(solved.json["links"] != nil && solved.json["warnings"] == nil)
            for tau in ["0.3", "1", "5"] {
                let onA = try get("/v1/puzzles/\(id)/soft?tau=\(tau)", port: a)
                let onB = try get("/v1/puzzles/\(id)/soft?tau=\(tau)", port: b)
                #expect(onB.status == 200 && onB.headers["content-type"] == "image/png", "τ \(tau): \(onB.text)")
                #expect(onB.body == onA.body, "τ \(tau): B recomputes the same soft reconstruction from the shared scores")
            }
            let described = try get("/v1/puzzles/\(id)", port: b)
            #expect(described.json["permutation"] as? [Int] == solved.json["permutation"] as? [Int])
            #expect(try get("/v1/puzzles/\(id)/solution.png", port: b).status == 200)
            #expect(try get("/v1/puzzles/ffffffffffffffff/soft", port: b).errorCode == "puzzle_not_found")
            let ready = try get("/readyz", port: b)
            #expect(ready.status == 200 && (ready.json["store"] as? [String: Any])?["status"] as? String == "available")
        }
    }

    /// One request of the load and what came back.
    struct Outcome {
        var kind: String
        var started: Date
        var seconds: Double
        var status: Int
        var code: String?
        var retryAfter: String?
        var stored: Bool
    }

    final class Load: @unchecked Sendable {
        private let lock = NSLock()
        private var outcomes: [Outcome] = []
        private var stopped = false
        var isStopped: Bool { lock.withLock { stopped } }
        var count: Int { lock.withLock { outcomes.count } }
        var all: [Outcome] { lock.withLock { outcomes } }
        private let group = DispatchGroup()

        /// Starts `workers` threads: even ones solve on A, odd ones read soft reconstructions on B.
        func start(workers: Int, a: Int, b: Int, id: String) {
            for worker in 0..<workers {
                group.enter()
                Thread.detachNewThread { [self] in
                    RedisReplicaTests.work(solving: worker % 2 == 0, load: self, a: a, b: b, id: id)
                    group.leave()
                }
            }
        }

        /// Stops the workers and waits for their last requests.
        func finish() {
            lock.withLock { stopped = true }
            group.wait()
        }
        func record(_ outcome: Outcome) { lock.withLock { outcomes.append(outcome) } }

        /// Waits (at most 10 s) until `count` requests have finished.
        func wait(until count: Int) {
            let deadline = Date().addingTimeInterval(10)
            while self.count < count, Date() < deadline { usleep(5_000) }
        }
    }

    /// One worker of the load: solves on A, or soft reconstructions of `id` on B, until stopped.
    static func work(solving: Bool, load: Load, a: Int, b: Int, id: String) {
        var round: UInt64 = 0
        while !load.isStopped {
            round += 1
            let started = Date()
            let reply: Reply?
            if solving {
                reply = try? solve(port: a, seed: round)
            } else {
                reply = try? get("/v1/puzzles/\(id)/soft?tau=0.5", port: b)
            }
            let outcome = Outcome(kind: solving ? "solve" : "soft", started: started,
                                  seconds: Date().timeIntervalSince(started), status: reply?.status ?? -1,
                                  code: reply?.errorCode, retryAfter: reply?.headers["retry-after"],
                                  stored: reply?.json["links"] != nil)
            load.record(outcome)
        }
    }

    @Test("Redis killed mid-load: 503 store_unavailable at once (solves still answer), then recovery when it is back")
    func outageAndRecovery() throws {
        let redis = try RedisServer()
        try Self.withReplicas(redis) { a, b in
            let first = try Self.solve(port: a, seed: 1)
            let id = try #require(first.json["id"] as? String)
            let load = Load()
            load.start(workers: 4, a: a, b: b, id: id)
            defer { load.finish() }
            load.wait(until: 20)
            let killing = Date()
            redis.kill()
            let killed = Date()
            let before = load.count
            load.wait(until: before + 40)
            let health = try get("/healthz", port: b)
            let readiness = try get("/readyz", port: b)
            let restarting = Date()
            try redis.start()
            load.finish()

            let outcomes = load.all
            #expect(outcomes.allSatisfy { $0.seconds < Self.requestBound }, "slowest \(outcomes.map(\.seconds).max() ?? 0) s")
            // 404 only once the restarted (empty) Redis answers.
            #expect(outcomes.allSatisfy { [200, 503].contains($0.status) || ($0.status == 404 && $0.started > restarting) },
                    "\(Set(outcomes.map(\.status)))")
            let up = outcomes.filter { $0.started.addingTimeInterval($0.seconds) < killing }
            #expect(up.count >= 10 && up.allSatisfy { $0.status == 200 && ($0.kind == "soft" || $0.stored) },
                    "\(up.filter { $0.status != 200 || !($0.kind == "soft" || $0.stored) })")
            let down = outcomes.filter { $0.started > killed && $0.started.addingTimeInterval($0.seconds) < restarting }
            let softDown = down.filter { $0.kind == "soft" }, solvesDown = down.filter { $0.kind == "solve" }
            #expect(softDown.count >= 10 && solvesDown.count >= 10)
            #expect(softDown.allSatisfy { $0.status == 503 && $0.code == "store_unavailable" && $0.retryAfter == "1" },
                    "\(softDown.filter { $0.status != 503 }.map { "\($0.status) \($0.code ?? "")" })")
            #expect(solvesDown.allSatisfy { $0.status == 200 && !$0.stored },
                    "a solve answers, unstored, while the store is down: \(solvesDown.filter { $0.status != 200 || $0.stored })")
            #expect(health.status == 200, "liveness does not depend on Redis")
            #expect(readiness.status == 200)
            #expect(((readiness.json["store"] as? [String: Any])?["status"] as? String)?.hasPrefix("unavailable") == true)

            // Recovery: the replicas reconnect by themselves once Redis answers again.
            let deadline = Date().addingTimeInterval(5)
            var recoveredID: String?
            while recoveredID == nil, Date() < deadline {
                let reply = try Self.solve(port: a, seed: 99)
                if reply.json["links"] != nil { recoveredID = reply.json["id"] as? String } else { usleep(20_000) }
            }
            let newID = try #require(recoveredID, "a solve is stored again within 5 s of Redis' restart")
            #expect(try get("/v1/puzzles/\(newID)/soft?tau=0.5", port: b).status == 200)
            // The restarted Redis kept nothing (no persistence in the test): the old puzzle is gone.
            #expect(try get("/v1/puzzles/\(id)/soft", port: b).errorCode == "puzzle_not_found")
            let metrics = try get("/metrics", port: b).text
            #expect(metrics.contains("jigsaw_puzzle_store_failures_total") && !metrics.contains("jigsaw_puzzle_store_entries"))
        }
    }
}
