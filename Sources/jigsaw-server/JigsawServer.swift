import ArgumentParser
import Foundation
import HTTPCore
import PuzzleService
import RESP
import TensorKit

/// `jigsaw-server`: serves the jigsaw-puzzle API and the web page.
@main
struct JigsawServer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jigsaw-server",
        abstract: "Serve the jigsaw puzzle solver over HTTP.",
        discussion: """
            Loads every Models/*.safetensors (or the files given with --model), then serves the API \
            described at /openapi.json and the web page of --public. A port of 0 picks a free one; \
            the line `listening on http://HOST:PORT` is printed once the socket is bound. \
            SIGINT or SIGTERM drains the requests in flight, then exits. /docs renders the API \
            reference. Text answers (JSON, HTML, CSS, JavaScript, SVG) of 1 KiB or more are \
            gzip-compressed for clients that accept it (--no-gzip turns this off). CORS is off by \
            default: browsers let only pages served by this server read its answers; \
            --cors-origin https://app.example.com (repeatable) or --cors-origin '*' lets pages of \
            other origins call the API (no credentials).
            """,
        version: PackageVersion.string)

    @Option(help: "The address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "The port (0 picks a free one and prints it).")
    var port = 8080

    @Option(help: "A directory whose *.safetensors files are loaded.")
    var models: String?

    @Option(name: .customLong("model"), help: "A weights file to load (repeatable).")
    var modelFiles: [String] = []

    @Option(name: .customLong("public"), help: "A directory of static files (the web page).")
    var publicDirectory: String?

    @Option(help: "A directory of sample datasets (default: MODELS/samples).")
    var samples: String?

    @Option(name: .customLong("assembly-model"),
            help: "The digit assembly network of /v1/assemble (default: MODELS/assembly/mnist-assembly.safetensors when it exists).")
    var assemblyModel: String?

    @Option(help: "The digit classifier that judges assemblies (default: MODELS/classifiers/mnist-classifier.safetensors when it exists).")
    var classifier: String?

    @Option(help: "The jigsaw model used when a request names none (default: the smallest grid).")
    var defaultModel: String?

    @Option(help: "Network instances per model (concurrent forward passes).")
    var networkInstances = 2

    @Option(help: "Most requests decoding, resizing or encoding images at once (the rest wait).")
    var concurrentWork = 4

    @Option(help: "Most requests waiting for heavy work (503 with Retry-After beyond).")
    var workQueue = 256

    @Option(help: "Seconds a request waits for heavy work before it is shed with 503.")
    var workTimeout = 30.0

    @Option(help: "Most requests gathered into one forward pass of a model (dynamic batching; 1 turns it off).")
    var maxBatch = 32

    @Option(help: "Milliseconds a forward pass that already holds two or more requests waits for more (a lone request never waits).")
    var batchWait = 0.0

    @Option(help: "Largest request body in bytes (413 beyond).")
    var maxBodyBytes = 10 * 1024 * 1024

    @Option(help: "Largest decoded PNG in samples (width × height × channels); 413 beyond, before decoding.")
    var maxImageSamples = 16 << 20

    @Option(help: "Most Sinkhorn iterations a request may ask for.")
    var maxIterations = 1000

    @Option(help: "Most open connections (503 beyond).")
    var maxConnections = 1024

    @Option(help: "Most open connections from one client address (503 beyond).")
    var maxConnectionsPerClient = 256

    @Option(help: "Most megabytes of request content buffered over all connections (503 with Retry-After beyond).")
    var bodyMemoryMegabytes = 256

    @Option(help: "Seconds to receive a request head.")
    var headerTimeout = 10.0

    @Option(help: "Seconds to receive a request body.")
    var bodyTimeout = 60.0

    @Option(help: "Seconds an idle keep-alive connection is kept.")
    var idleTimeout = 30.0

    @Option(help: "Seconds a graceful shutdown waits for requests in flight.")
    var shutdownTimeout = 30.0

    @Option(help: ArgumentHelp(
        "Where solved puzzles are kept: memory, or a Redis server shared by replicas.",
        discussion: "redis://[[user]:password@]host[:port][/db]; bound its total size with Redis' maxmemory and an LRU policy.",
        valueName: "memory|redis-url"))
    var store = "memory"

    @Option(help: "Seconds a Redis command may take before the store counts as unavailable (503 store_unavailable).")
    var storeTimeout = 1.0

    @Option(help: "Seconds to open a connection to Redis.")
    var storeConnectTimeout = 0.25

    @Option(help: "Largest puzzle stored in Redis, in megabytes (larger ones are solved but not stored).")
    var storeEntryMegabytes = 16

    @Option(help: "Prefix of the Redis keys of puzzles.")
    var storePrefix = "jigsaw:puzzle:"

    @Option(help: "Most puzzles kept in memory (memory store).")
    var storeCapacity = 1024

    @Option(help: "Most megabytes of puzzles kept in memory (memory store).")
    var storeMegabytes = 256

    @Option(help: "Seconds a solved puzzle is kept (both stores).")
    var storeTTL = 3600.0

    @Option(help: "Seed of the generator of puzzle ids and default scramble seeds (default: the clock and the process id). Replicas sharing a store must not share a seed: their ids would collide.")
    var seed: UInt64?

    @Option(name: .customLong("cors-origin"),
            help: "An origin (scheme://host[:port]) whose pages may call the API, or * for any (repeatable; default: none, CORS off).")
    var corsOrigins: [String] = []

    @Flag(inversion: .prefixedNo, help: "Compress text answers of 1 KiB or more with gzip for clients that accept it.")
    var gzip = true

    @Flag(inversion: .prefixedNo, help: "Write one access-log line per request to standard output.")
    var accessLog = true

    /// Checked from `run()` rather than `validate()`: ArgumentParser validates before it reports
    /// unknown flags, which would hide a misspelt flag behind a message about a missing option.
    func check() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535") }
        guard !host.isEmpty else { throw ValidationError("--host must not be empty") }
        guard models != nil || !modelFiles.isEmpty else {
            throw ValidationError("give a models directory with --models DIR or weights files with --model FILE")
        }
        for (name, directory) in [("--models", models), ("--public", publicDirectory), ("--samples", samples)] {
            guard let directory else { continue }
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw ValidationError("\(name) \(directory) is not a directory")
            }
        }
        for file in modelFiles where !FileManager.default.isReadableFile(atPath: file) {
            throw ValidationError("--model \(file) is not a readable file")
        }
        guard (1...64).contains(networkInstances) else { throw ValidationError("--network-instances must be in 1...64") }
        guard (1...256).contains(concurrentWork) else { throw ValidationError("--concurrent-work must be in 1...256") }
        guard (0...100_000).contains(workQueue) else { throw ValidationError("--work-queue must be in 0...100000") }
        guard workTimeout.isFinite, workTimeout > 0, workTimeout <= 3600 else { throw ValidationError("--work-timeout must be in (0, 3600] seconds") }
        guard (1...1024).contains(maxBatch) else { throw ValidationError("--max-batch must be in 1...1024") }
        guard batchWait.isFinite, (0...1000).contains(batchWait) else { throw ValidationError("--batch-wait must be in 0...1000 milliseconds") }
        guard maxBodyBytes >= 1024 else { throw ValidationError("--max-body-bytes must be at least 1024") }
        guard maxImageSamples >= 1 else { throw ValidationError("--max-image-samples must be positive") }
        guard (20...1_000_000).contains(maxIterations) else { throw ValidationError("--max-iterations must be in 20...1000000") }
        guard maxConnections >= 1 else { throw ValidationError("--max-connections must be positive") }
        guard maxConnectionsPerClient >= 1 else { throw ValidationError("--max-connections-per-client must be positive") }
        guard (1...1_048_576).contains(bodyMemoryMegabytes) else { throw ValidationError("--body-memory-megabytes must be in 1...1048576") }
        for (name, value) in [("--header-timeout", headerTimeout), ("--body-timeout", bodyTimeout),
                              ("--idle-timeout", idleTimeout), ("--shutdown-timeout", shutdownTimeout), ("--store-ttl", storeTTL)] {
            guard value.isFinite, value > 0, value <= 86_400 * 365 else { throw ValidationError("\(name) must be positive seconds") }
        }
        if !corsOrigins.isEmpty {
            do {
                _ = try HTTPCORSPolicy(allowedOrigins: corsOrigins)
            } catch {
                throw ValidationError("--cors-origin: \(error)")
            }
        }
        guard storeCapacity >= 1 else { throw ValidationError("--store-capacity must be positive") }
        _ = try redisEndpoint()
        for (name, value) in [("--store-timeout", storeTimeout), ("--store-connect-timeout", storeConnectTimeout)] {
            guard value.isFinite, value >= 0.001, value <= 60 else { throw ValidationError("\(name) must be in 0.001...60 seconds") }
        }
        guard (1...512).contains(storeEntryMegabytes) else { throw ValidationError("--store-entry-megabytes must be in 1...512") }
        guard !storePrefix.isEmpty else { throw ValidationError("--store-prefix must not be empty") }
        guard (1...1_048_576).contains(storeMegabytes) else { throw ValidationError("--store-megabytes must be in 1...1048576") }
    }

    /// A seed that differs between replicas started in the same microsecond (their puzzle ids
    /// share one key space when they share a store).
    static func clockSeed() -> UInt64 {
        UInt64(Date().timeIntervalSince1970 * 1e6) ^ (UInt64(UInt32(bitPattern: getpid())) << 40)
    }

    /// The Redis server of `--store`, `nil` for the memory store.
    func redisEndpoint() throws -> RedisEndpoint? {
        guard store != "memory" else { return nil }
        do {
            return try RedisEndpoint(url: store)
        } catch {
            throw ValidationError("--store must be memory or redis://[[user]:password@]host[:port][/db]: \(error)")
        }
    }

    /// The assembler of the files given, or of the models directory's defaults when both exist.
    func makeAssembler() throws -> DigitAssembler? {
        let inModels = { (path: String) in self.models.map { ($0 as NSString).appendingPathComponent(path) } }
        let assemblyPath = assemblyModel ?? inModels("assembly/mnist-assembly.safetensors")
        let classifierPath = classifier ?? inModels("classifiers/mnist-classifier.safetensors")
        guard let assemblyPath, let classifierPath else {
            if assemblyModel != nil || classifier != nil {
                throw ValidationError("--assembly-model and --classifier go together (or give --models with both files in it)")
            }
            return nil
        }
        let given = assemblyModel != nil || classifier != nil
        guard given || (FileManager.default.fileExists(atPath: assemblyPath) && FileManager.default.fileExists(atPath: classifierPath)) else {
            return nil
        }
        return try DigitAssembler(assemblyFile: assemblyPath, classifierFile: classifierPath, instances: networkInstances)
    }

    func run() throws {
        do {
            try check()
        } catch let error as ValidationError {
            FileHandle.standardError.write(Data("Error: \(error.message)\nUsage: \(Self.usageString())\n".utf8))
            throw ExitCode.validationFailure
        }
        JigsawService.configureProcess()
        let registry: ModelRegistry
        do {
            registry = try ModelRegistry(directory: models, files: modelFiles, defaultModel: defaultModel,
                                         instances: networkInstances,
                                         batching: BatchPolicy(maximumSize: maxBatch, maximumWait: .microseconds(Int64(batchWait * 1000))))
        } catch {
            FileHandle.standardError.write(Data("jigsaw-server: \(error)\n".utf8))
            throw ExitCode.failure
        }
        var assembler: DigitAssembler?
        do {
            assembler = try makeAssembler()
        } catch {
            FileHandle.standardError.write(Data("jigsaw-server: \(error)\n".utf8))
            throw ExitCode.failure
        }
        let sampleDirectory = samples ?? models.map { ($0 as NSString).appendingPathComponent("samples") }
        let sampleSet: SampleSet
        do {
            sampleSet = try sampleDirectory.map { try SampleSet(directory: $0) } ?? SampleSet(datasets: [:])
        } catch {
            FileHandle.standardError.write(Data("jigsaw-server: cannot load samples: \(error)\n".utf8))
            throw ExitCode.failure
        }
        let seconds = { (value: Double) in Duration.milliseconds(Int64((value * 1000).rounded())) }
        var puzzleStore: (any PuzzleStoring)?
        if let endpoint = try redisEndpoint() {
            let log: @Sendable (String) -> Void = { FileHandle.standardError.write(Data("jigsaw-server: \($0)\n".utf8)) }
            let redis = RedisPuzzleStore(
                endpoint: endpoint, timeToLive: seconds(storeTTL), maximumEntryBytes: storeEntryMegabytes << 20,
                keyPrefix: storePrefix,
                timeouts: RedisTimeouts(connect: seconds(storeConnectTimeout), operation: seconds(storeTimeout)),
                connections: max(8, concurrentWork * 2), log: log)
            // A store that is down at start is no reason not to serve: solves still answer, and
            // the store recovers by itself when Redis comes back.
            do {
                try redis.checkAvailability()
            } catch {
                log("starting anyway: \(error)")
            }
            puzzleStore = redis
        }
        let service = JigsawService(
            registry: registry, samples: sampleSet,
            configuration: ServiceConfiguration(
                maximumImageSamples: maxImageSamples, maximumPieceListSamples: maxImageSamples,
                maximumIterations: maxIterations, storeCapacity: storeCapacity, storeByteBudget: storeMegabytes << 20,
                storeTimeToLive: seconds(storeTTL), seed: seed ?? Self.clockSeed(),
                concurrentWork: concurrentWork, workQueueLength: workQueue,
                workQueueTimeout: seconds(workTimeout)),
            publicDirectory: publicDirectory, store: puzzleStore, assembler: assembler)
        let server = service.makeServer(configuration: HTTPServerConfiguration(
            host: host, port: port, limits: HTTPLimits(bodyBytes: maxBodyBytes),
            headerTimeout: seconds(headerTimeout), bodyTimeout: seconds(bodyTimeout), idleTimeout: seconds(idleTimeout),
            shutdownTimeout: seconds(shutdownTimeout), maxConnections: maxConnections,
            maxConnectionsPerClient: maxConnectionsPerClient, bodyMemoryBudget: bodyMemoryMegabytes << 20,
            accessLog: accessLog ? HTTPAccessLogEntry.writeToStandardOutput : nil,
            responsePolicy: HTTPResponsePolicy(compression: gzip ? HTTPCompression() : nil,
                                               cors: corsOrigins.isEmpty ? nil : try? HTTPCORSPolicy(allowedOrigins: corsOrigins))))
        do {
            try server.start()
        } catch {
            FileHandle.standardError.write(Data("jigsaw-server: cannot listen on \(host):\(port): \(error)\n".utf8))
            throw ExitCode.failure
        }
        let names = registry.models.map { $0.name + ($0.isInferred ? " (configuration inferred)" : "") }
        var banner = "models: \(names.isEmpty ? "none (readyz answers 503)" : names.joined(separator: ", "))"
        if let name = registry.defaultJigsawModel?.name { banner += "; default \(name)" }
        banner += "; samples: \(sampleSet.datasets.keys.sorted().joined(separator: ", "))"
        banner += "; assembly: \(assembler?.name ?? "none")"
        banner += "; store: \(service.store.name)\n"
        let shownHost = host.contains(":") ? "[\(host)]" : host
        FileHandle.standardOutput.write(Data((banner + "listening on http://\(shownHost):\(server.port)\n").utf8))
        server.waitForTermination()
        FileHandle.standardOutput.write(Data("stopped\n".utf8))
    }
}
