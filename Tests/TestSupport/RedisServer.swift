import Foundation
import Glibc
import Sockets

/// A throwaway `redis-server` for tests: its own free loopback port, its own temporary
/// directory, no persistence; killed (and its directory removed) when released.
public final class RedisServer: @unchecked Sendable {
    /// The `redis-server` executable: `$REDIS_SERVER` when set (`REDIS_SERVER=none` skips the
    /// Redis tests), else the first on `PATH` or in the usual system directories; `nil` when
    /// there is none.
    public static let executable: String? = {
        let environment = ProcessInfo.processInfo.environment
        if let path = environment["REDIS_SERVER"] { return FileManager.default.isExecutableFile(atPath: path) ? path : nil }
        let directories = (environment["PATH"] ?? "").split(separator: ":").map(String.init)
            + ["/usr/bin", "/usr/sbin", "/usr/local/bin"]
        return directories.map { $0 + "/redis-server" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    /// Why Redis tests are skipped on this machine.
    public static let skipReason =
        "redis-server is not installed (make test installs Debian's redis-server when it can); the Redis tests are skipped"

    public let port: Int
    public let directory: URL
    private let arguments: [String]
    private let lock = NSLock()
    private var process: Process?

    public enum Failure: Error {
        case notInstalled
        case didNotStart(String)
    }

    /// Starts a server on a free port and waits until it answers.
    ///
    /// - Parameter arguments: more `redis-server` options (`--requirepass`, `--maxmemory` …).
    public init(arguments: [String] = []) throws {
        guard Self.executable != nil else { throw Failure.notInstalled }
        let (listener, port) = try Socket.listen(host: "127.0.0.1", port: 0, backlog: 1)
        Socket.close(listener)
        self.port = port
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("redis-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        self.arguments = arguments
        try start()
    }

    deinit {
        kill()
        try? FileManager.default.removeItem(at: directory)
    }

    /// Starts (or restarts) the server on the same port and waits until it answers.
    public func start() throws {
        guard let executable = Self.executable else { throw Failure.notInstalled }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", directory.path, "--logfile", directory.appendingPathComponent("redis.log").path,
                             "--daemonize", "no", "--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"] + arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        lock.withLock { self.process = process }
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if answers() { return }
            guard process.isRunning else { break }
            usleep(10_000)
        }
        let log = (try? String(contentsOf: directory.appendingPathComponent("redis.log"), encoding: .utf8)) ?? ""
        kill()
        throw Failure.didNotStart(String(log.suffix(2000)))
    }

    /// Kills the server at once (`SIGKILL`: no goodbye to its clients) and waits for it to exit.
    public func kill() {
        let process = lock.withLock { () -> Process? in
            defer { self.process = nil }
            return self.process
        }
        guard let process, process.isRunning else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Stops (`SIGSTOP`) or resumes (`SIGCONT`) the server: a stopped server keeps its
    /// connections and accepts new ones into the backlog but never answers — a slow Redis.
    public func pause(_ paused: Bool) {
        guard let process = lock.withLock({ self.process }), process.isRunning else { return }
        Glibc.kill(process.processIdentifier, paused ? SIGSTOP : SIGCONT)
    }

    /// Whether something on the port answers a RESP `PING` (any reply, so a password does not matter).
    private func answers() -> Bool {
        guard let descriptor = try? Socket.connect(host: "127.0.0.1", port: port, timeoutMilliseconds: 200) else { return false }
        defer { Socket.close(descriptor) }
        let ping = Array("*1\r\n$4\r\nPING\r\n".utf8)
        guard case .bytes = ping.withUnsafeBytes({ Socket.send(descriptor, $0) }) else { return false }
        guard Socket.wait(descriptor, for: .readable, timeoutMilliseconds: 500) == .ready else { return false }
        var reply = [UInt8](repeating: 0, count: 64)
        guard case .bytes = reply.withUnsafeMutableBytes({ Socket.receive(descriptor, into: $0) }) else { return false }
        return reply[0] == UInt8(ascii: "+") || reply[0] == UInt8(ascii: "-")
    }
}
