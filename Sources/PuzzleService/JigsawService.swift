import Foundation
import HTTPCore
import Jigsaw
import TensorKit

/// The jigsaw-puzzle HTTP service: its routes, model registry, puzzle store and counters.
///
/// Build it, then serve its ``router`` with ``makeServer(configuration:)`` (which also installs
/// the JSON error renderer and lets `/metrics` read the server's counters):
///
///     let service = JigsawService(registry: try ModelRegistry(directory: "Models"))
///     let server = service.makeServer(configuration: HTTPServerConfiguration(port: 0))
///     try server.start()
///
/// Handlers never crash on input: every value from a request is validated before it reaches a
/// library precondition, and every library error becomes a JSON error with a 4xx status.
public final class JigsawService: Sendable {
    /// The loaded models.
    public let registry: ModelRegistry
    /// Demo images for `/v1/samples/{k}`.
    public let samples: SampleSet
    /// Limits and defaults.
    public let configuration: ServiceConfiguration
    /// The solved puzzles: in memory by default, or shared (``RedisPuzzleStore``).
    public let store: any PuzzleStoring
    /// The directory of the web page, if served.
    public let publicDirectory: String?

    let counters = Locked(ServiceCounters())
    private let workGate: DispatchSemaphore
    private let generator: Locked<SeededGenerator>
    private let server = Locked<WeakServer>(WeakServer())

    /// Creates the service.
    ///
    /// - Parameters:
    ///   - registry: the models.
    ///   - samples: demo images (none by default).
    ///   - configuration: limits and defaults.
    ///   - publicDirectory: a directory of static files served for paths no route matches
    ///     (`/` serves its `index.html`).
    ///   - store: where solved puzzles are kept; `nil` makes a ``PuzzleStore`` in memory with the
    ///     configuration's bounds and time to live.
    ///   - clock: the in-memory store's monotonic clock in nanoseconds (injectable for tests).
    public init(registry: ModelRegistry, samples: SampleSet = SampleSet(datasets: [:]),
                configuration: ServiceConfiguration = ServiceConfiguration(), publicDirectory: String? = nil,
                store: (any PuzzleStoring)? = nil,
                clock: @escaping @Sendable () -> UInt64 = { DispatchTime.now().uptimeNanoseconds }) {
        self.registry = registry
        self.samples = samples
        self.configuration = configuration
        self.publicDirectory = publicDirectory
        self.store = store ?? PuzzleStore(capacity: configuration.storeCapacity, byteBudget: configuration.storeByteBudget,
                                          timeToLive: configuration.storeTimeToLive, clock: clock)
        generator = Locked(SeededGenerator(seed: configuration.seed))
        workGate = DispatchSemaphore(value: configuration.concurrentWork)
    }

    /// Makes BLAS single-threaded: the server parallelises over requests, and OpenBLAS threads
    /// inside each small product would only compete with them. Call once at process start.
    public static func configureProcess() {
        BLAS.setThreads(1)
    }

    /// An HTTP server answering with this service's router and JSON errors.
    ///
    /// - Parameter configuration: the server configuration; its `errorRenderer` is replaced by
    ///   the JSON renderer.
    public func makeServer(configuration: HTTPServerConfiguration) -> HTTPServer {
        var configuration = configuration
        configuration.errorRenderer = ServiceError.jsonRenderer
        let server = HTTPServer(configuration: configuration, router: router)
        self.server.update { $0.server = server }
        return server
    }

    /// Every route of the service.
    public var router: HTTPRouter {
        var router = HTTPRouter(errorRenderer: ServiceError.jsonRenderer)
        router.get("/healthz", handler: handle { _ in try ResponseEncoding.json(["status": "ok"]) })
        router.get("/readyz", handler: handle { try self.readiness($0) })
        router.get("/metrics", handler: handle { _ in self.metricsResponse() })
        router.get("/openapi.json", handler: handle { _ in
            HTTPResponse.json(OpenAPIDocument.data)
        })
        router.get("/v1/models", handler: handle { try self.listModels($0) })
        router.get("/v1/models/{name}", handler: handle { try self.describeModel($0) })
        router.post("/v1/solve", handler: handle { try self.gated(self.solve, $0) })
        router.get("/v1/puzzles/{id}", handler: handle { try self.describePuzzle($0) })
        router.get("/v1/puzzles/{id}/soft", handler: handle { try self.softReconstruction($0) })
        router.get("/v1/puzzles/{id}/scrambled.png", handler: handle { try self.scrambledImage($0) })
        router.get("/v1/puzzles/{id}/solution.png", handler: handle { try self.solutionImage($0) })
        router.post("/v1/scramble", handler: handle { try self.gated(self.scrambleUpload, $0) })
        router.get("/v1/samples", handler: handle { try self.listSamples($0) })
        router.get("/v1/samples/{k}", handler: handle { try self.gated(self.sample, $0) })
        router.post("/v1/sort", handler: handle { try self.gated(self.sort, $0) })
        if let publicDirectory {
            router.fallback = HTTPStaticFiles(directory: publicDirectory).handler
        } else {
            router.get("/", handler: handle { try self.index($0) })
        }
        return router
    }

    /// Wraps a handler so that whatever it throws leaves as a JSON error with a 4xx status.
    private func handle(_ body: @escaping @Sendable (HTTPRequest) throws -> HTTPResponse) -> HTTPRouter.Handler {
        { request in
            do {
                return try body(request)
            } catch let failure as HTTPFailure {
                throw failure
            } catch {
                throw HTTPFailure.handlerError(ServiceError.wrapping(error))
            }
        }
    }

    /// Runs an image- or network-heavy handler once fewer than `concurrentWork` others are running.
    private func gated(_ body: (HTTPRequest) throws -> HTTPResponse, _ request: HTTPRequest) throws -> HTTPResponse {
        workGate.wait()
        defer { workGate.signal() }
        return try body(request)
    }

    /// A fresh puzzle id: 16 hexadecimal digits from the service's seeded generator.
    func makeIdentifier() -> String {
        let value = generator.update { $0.next() }
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    /// A seed for a scramble request that gave none.
    func makeSeed() -> UInt64 {
        generator.update { $0.next() } & Self.maximumSeed
    }

    /// The largest seed the service takes or makes: `2⁵³ − 1`, so that every seed in a JSON answer
    /// is read exactly by JavaScript (whose numbers are doubles) and reproduces its scramble.
    static let maximumSeed: UInt64 = (1 << 53) - 1

    /// The counters of the server made by ``makeServer(configuration:)``, if it still exists.
    func serverMetrics() -> HTTPServerMetrics? {
        server.value.server?.metrics()
    }

    private func index(_ request: HTTPRequest) throws -> HTTPResponse {
        try ResponseEncoding.json([
            "service": "jigsaw puzzle solver (Gumbel-Sinkhorn networks)",
            "openapi": "/openapi.json",
            "models": "/v1/models",
            "solve": "/v1/solve",
        ])
    }
}

/// Service-level counters for `/metrics`.
struct ServiceCounters {
    var puzzlesSolved: [String: Int] = [:]
    var listsSorted: [String: Int] = [:]
    var softReconstructions = 0
    var samplesServed = 0
    var scrambles = 0
}

/// A weak reference to the server, so the service does not keep a stopped server alive.
struct WeakServer {
    weak var server: HTTPServer?
}

/// A value guarded by a lock.
final class Locked<Value>: @unchecked Sendable {
    // Thread safety: `stored` is touched only with `lock` held.
    private let lock = NSLock()
    private var stored: Value

    init(_ value: Value) { stored = value }

    var value: Value { lock.withLock { stored } }

    func update<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        try lock.withLock { try body(&stored) }
    }
}
