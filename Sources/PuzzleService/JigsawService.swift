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
    /// The network that assembles digits into chosen ones (`/v1/assemble`), if loaded.
    public let assembler: DigitAssembler?

    let counters = Locked(ServiceCounters())
    /// The admission queue of the heavy routes.
    public let workGate: WorkGate
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
    ///   - assembler: the digit assembler of `/v1/assemble` (503 `no_model` there without one).
    public init(registry: ModelRegistry, samples: SampleSet = SampleSet(datasets: [:]),
                configuration: ServiceConfiguration = ServiceConfiguration(), publicDirectory: String? = nil,
                store: (any PuzzleStoring)? = nil, assembler: DigitAssembler? = nil,
                clock: @escaping @Sendable () -> UInt64 = { DispatchTime.now().uptimeNanoseconds }) {
        self.registry = registry
        self.samples = samples
        self.configuration = configuration
        self.publicDirectory = publicDirectory
        self.assembler = assembler
        self.store = store ?? PuzzleStore(capacity: configuration.storeCapacity, byteBudget: configuration.storeByteBudget,
                                          timeToLive: configuration.storeTimeToLive, clock: clock)
        generator = Locked(SeededGenerator(seed: configuration.seed))
        workGate = WorkGate(slots: configuration.concurrentWork, maximumWaiting: configuration.workQueueLength,
                            maximumWait: configuration.workQueueTimeout)
    }

    /// Makes BLAS single-threaded: the server parallelises over requests, and OpenBLAS threads
    /// inside each small product would only compete with them. Call once at process start.
    ///
    /// It also caps glibc's malloc arenas at two: every Dispatch worker thread would otherwise get
    /// an arena of its own, and memory freed in one is not reused by the others, so a long load
    /// grows the resident size in steps as new threads appear.
    public static func configureProcess() {
        BLAS.setThreads(1)
        _ = glibcMallopt(mallocArenaMaximum, 2)
    }

    /// `M_ARENA_MAX` of `<malloc.h>`.
    private static let mallocArenaMaximum: Int32 = -8

    /// An HTTP server answering with this service's router and JSON errors.
    ///
    /// - Parameter configuration: the server configuration; its `errorRenderer` is replaced by
    ///   the JSON renderer.
    public func makeServer(configuration: HTTPServerConfiguration) -> HTTPServer {
        var configuration = configuration
        configuration.errorRenderer = ServiceError.jsonRenderer
        if configuration.isCheap == nil { configuration.isCheap = JigsawService.isCheap }
        let server = HTTPServer(configuration: configuration, router: router)
        self.server.update { $0.server = server }
        return server
    }

    /// Requests that never wait behind heavy work: health, readiness, metrics, the API documents
    /// and static files (any GET or HEAD outside `/v1/`).
    @Sendable public static func isCheap(_ request: HTTPRequest) -> Bool {
        guard request.method == .get || request.method == .head || request.method == .options else { return false }
        return !request.path.hasPrefix("/v1/")
    }

    /// Every route of the service.
    public var router: HTTPRouter {
        var router = HTTPRouter(errorRenderer: ServiceError.jsonRenderer)
        router.get("/healthz", handler: handle { _ in try ResponseEncoding.json(["status": "ok"]) })
        router.get("/readyz", handler: handle { try self.readiness($0) })
        router.get("/metrics", handler: handle { _ in
            var response = self.metricsResponse()
            response.body += Array((ProcessMetrics.current()?.prometheusText ?? "").utf8)
            return response
        })
        router.get("/openapi.json", handler: handle { _ in
            JigsawService.constantDocument(OpenAPIDocument.bytes, contentType: "application/json")
        })
        router.get("/docs", handler: handle { _ in
            var response = JigsawService.constantDocument(APIDocumentationPage.bytes, contentType: "text/html; charset=utf-8")
            response.headers["Content-Security-Policy"] = APIDocumentationPage.contentSecurityPolicy
            return response
        })
        router.get("/v1/models", handler: handle { try self.listModels($0) })
        router.get("/v1/models/{name}", handler: handle { try self.describeModel($0) })
        router.post("/v1/solve", handler: handle { try self.gated(self.solve, $0) })
        router.get("/v1/puzzles/{id}", handler: handle { try self.describePuzzle($0) })
        router.get("/v1/puzzles/{id}/soft", handler: handle { try self.gated(self.softReconstruction, $0) })
        router.get("/v1/puzzles/{id}/scrambled.png", handler: handle { try self.scrambledImage($0) })
        router.get("/v1/puzzles/{id}/solution.png", handler: handle { try self.solutionImage($0) })
        router.post("/v1/scramble", handler: handle { try self.gated(self.scrambleUpload, $0) })
        router.get("/v1/samples", handler: handle { try self.listSamples($0) })
        router.get("/v1/samples/{k}", handler: handle { try self.gated(self.sample, $0) })
        router.post("/v1/sort", handler: handle { try self.gated(self.sort, $0) })
        router.get("/v1/assemble", handler: handle { try self.describeAssembler($0) })
        router.post("/v1/assemble", handler: handle { try self.gated(self.assemble, $0) })
        if let publicDirectory {
            router.fallback = HTTPStaticFiles(directory: publicDirectory).handler
        } else {
            router.get("/", handler: handle { try self.index($0) })
        }
        return router
    }

    /// A document fixed at build time (`/openapi.json`, `/docs`), with a strong `ETag` of its
    /// bytes and `Cache-Control: no-cache`: a client revalidates each time and gets a 304 until
    /// a new server version changes the document.
    static func constantDocument(_ bytes: [UInt8], contentType: String) -> HTTPResponse {
        HTTPResponse(status: .ok, headers: [
            "Content-Type": contentType,
            "ETag": HTTPEntityTag.strong(hashing: bytes).headerValue,
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
        ], body: bytes)
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
        try workGate.run {
            // The client hung up while the request waited: nobody would read the answer.
            guard !request.isAbandoned() else {
                workGate.countAbandoned()
                throw ServiceError.clientClosed
            }
            return try body(request)
        }
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
            "docs": "/docs",
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
    var assemblies = 0
}

/// glibc's `mallopt` (declared in `<malloc.h>`, which the Glibc module does not export).
@_silgen_name("mallopt")
private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32

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
