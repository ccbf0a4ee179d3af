import Foundation
import Glibc
import Testing
import TestSupport

/// `jigsaw-server --store …` run as a user would (the executable is built beside the tests).
@Suite("jigsaw-server --store")
struct ServerStoreFlagTests {
    static func locate(_ name: String) -> String? {
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent(name).path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory.deleteLastPathComponent()
        }
        return nil
    }

    static let server = locate("jigsaw-server")
    static let model = Fixtures.trainedModel

    static func launch(_ arguments: [String]) throws -> (Process, Pipe, Pipe) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try #require(server, "jigsaw-server was not built beside the tests"))
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        return (process, out, err)
    }

    /// What the server prints up to the line that announces its port (less if it exits first).
    static func announcement(on out: Pipe) -> String {
        var text = ""
        while !text.contains("listening on http://"), !text.hasSuffix("\n\n") {
            let data = out.fileHandleForReading.availableData
            if data.isEmpty { break }
            text += String(decoding: data, as: UTF8.self)
        }
        return text
    }

    static func port(in announcement: String) throws -> Int {
        let line = try #require(announcement.split(separator: "\n").first { $0.hasPrefix("listening on http://") }, "\(announcement)")
        return try #require(line.split(separator: ":").last.flatMap { Int($0) })
    }

    /// The port a launched server announces on its standard output.
    static func port(announcedOn out: Pipe) throws -> Int { try port(in: announcement(on: out)) }

    @Test("a bad --store is refused at start with the part that is wrong", arguments: [
        ("redis://cache:99999", "--store must be memory or redis://[[user]:password@]host[:port][/db]: invalid Redis URL 'redis://cache:99999': the port must be in 1...65535"),
        ("rediss://cache", "TLS (rediss://) is not supported"),
        ("memcached://cache", "expected redis://[[user]:password@]host[:port][/db]"),
        ("redis://:secret@cache/x", "invalid Redis URL 'redis://***@cache/x': the database must be a number ≥ 0"),
    ])
    func badStore(store: String, message: String) throws {
        let (process, _, err) = try Self.launch(["--port", "0", "--model", Self.model, "--store", store])
        let error = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 64)
        #expect(error.contains(message), "stderr: \(error)")
        #expect(!error.contains("secret"))
    }

    @Test("two jigsaw-server processes with --store redis://… answer for each other's puzzles",
          .enabled(if: RedisServer.executable != nil, Comment(rawValue: RedisServer.skipReason)))
    func twoProcesses() throws {
        let redis = try RedisServer()
        var ports: [Int] = []
        var processes: [Process] = []
        defer {
            for process in processes where process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        }
        for _ in 0..<2 {
            let (process, out, _) = try Self.launch(["--port", "0", "--model", Self.model, "--samples", Fixtures.samples,
                                                     "--store", "redis://127.0.0.1:\(redis.port)/1", "--no-access-log"])
            processes.append(process)
            let text = Self.announcement(on: out)
            #expect(text.contains("store: redis://127.0.0.1:\(redis.port)/1"), "\(text)")
            ports.append(try Self.port(in: text))
        }
        let sample = try get("/v1/samples/3?dataset=mnist", port: ports[0])
        #expect(sample.status == 200, "\(sample.text)")
        let id = try #require(sample.json["id"] as? String)
        let soft = try get("/v1/puzzles/\(id)/soft?tau=0.5", port: ports[1])
        #expect(soft.status == 200 && soft.headers["content-type"] == "image/png", "\(soft.text)")
    }
}
