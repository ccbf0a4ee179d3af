import Foundation
import HTTPCore
import NeuralNet
import Permutations
import TensorKit

extension JigsawService {
    // MARK: - POST /v1/sort

    /// `POST /v1/sort`: `{"numbers": [...], "model"?, "tau"?, "iterations"?}`.
    ///
    /// The list goes through a `sorting-mlp` model: the named one, else the smallest whose count
    /// holds the list. A shorter list is padded with values above its maximum
    /// (`max + (k + 1)·δ`, `δ = (max − min)/N` or 1) that sort after every real number and are
    /// dropped from the answer; a longer one is refused. The matching `M(X)` of the scores gives
    /// slots; the real numbers' slots ranked give `permutation[i]` = sorted position of number
    /// `i`, and `sorted[j] = x[i]` where `permutation[i] = j`.
    func sort(_ request: HTTPRequest) throws -> HTTPResponse {
        _ = try RequestContent.kind(of: request, accepting: [.json])
        let body = try RequestContent.decode(SortRequestBody.self, from: request.body)
        let numbers = body.numbers
        guard !numbers.isEmpty else { throw ServiceError.unprocessableInput("'numbers' is empty") }
        guard numbers.allSatisfy({ Float($0).isFinite }) else {
            throw ServiceError.unprocessableInput("every number must be finite in float32 (magnitude below 3.4e38)")
        }
        let (model, sorting) = try registry.sortingModel(named: body.model ?? request.queryParameters["model"], length: numbers.count)
        guard let batcher = model.sortingBatcher else { throw ServiceError.wrongModelKind(name: model.name, expected: "sorting") }
        let n = sorting.count
        guard numbers.count <= n else {
            throw ServiceError.unprocessableInput("model '\(model.name)' sorts \(n) numbers; got \(numbers.count)")
        }
        let temperature = try request.temperature(body.tau, default: nil)
        let iterations = try request.iterations(body.iterations?.value, default: configuration.defaultIterations,
                                                maximum: configuration.maximumIterations)
        try model.checkAvailable()
        var values = numbers.map(Float.init)
        let padding = n - numbers.count
        if padding > 0 {
            let (low, high) = (values.min() ?? 0, values.max() ?? 0)
            let step = high > low ? (high - low) / Float(numbers.count) : 1
            values += (0..<padding).map { high + Float($0 + 1) * step }
            guard values.allSatisfy(\.isFinite) else {
                throw ServiceError.unprocessableInput("the list cannot be padded to \(n) numbers within float32")
            }
        }
        let scores = workGate.setAside { batcher.run(Tensor(shape: [1, n], storage: values)).output }.reshaped([n, n])
        // Far below float32's range, a network with finite weights has no excuse for non-finite scores.
        if values.allSatisfy({ abs($0) <= Self.sortingInputScale }) {
            try model.checkScores(scores, maximumMagnitude: nil)
        }
        let slots: [Int]
        do {
            slots = try LinearAssignment.matchings(scores: scores).first ?? []
        } catch {
            throw ServiceError.wrapping(error)
        }
        let realCount = numbers.count
        let order = (0..<realCount).sorted { slots[$0] < slots[$1] }
        var permutation = [Int](repeating: 0, count: realCount)
        for (position, item) in order.enumerated() { permutation[item] = position }
        let sorted = order.map { numbers[$0] }
        var soft: SoftMatrixBody?
        if let temperature {
            let result = try PuzzleSolver.softMatrix(scores, temperature: temperature, iterations: iterations)
            soft = SoftMatrixBody(result.matrix, tau: temperature, iterations: iterations, marginalError: result.marginalError)
        }
        counters.update { $0.listsSorted[model.name, default: 0] += 1 }
        return try ResponseEncoding.json(SortBody(model: model.name, count: realCount, padded: padding,
                                                  permutation: permutation, sorted: sorted, soft: soft))
    }

    /// The largest input magnitude for which non-finite scores of a sorting network are taken as
    /// its own failure rather than an overflow caused by the numbers sent.
    static let sortingInputScale: Float = 1e6

    // MARK: - Models, health, metrics

    /// Upper bounds of the batch-size histogram's buckets.
    static let batchSizeBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]

    /// `GET /v1/models`.
    func listModels(_ request: HTTPRequest) throws -> HTTPResponse {
        struct Body: Encodable {
            var defaultModel: String?
            var models: [ModelBody]
        }
        let defaultName = registry.defaultJigsawModel?.name
        return try ResponseEncoding.json(Body(defaultModel: defaultName,
                                              models: registry.models.map { ModelBody($0, isDefault: $0.name == defaultName) }))
    }

    /// `GET /v1/models/{name}`.
    func describeModel(_ request: HTTPRequest) throws -> HTTPResponse {
        let name = request.pathParameters["name"] ?? ""
        guard let model = registry.model(named: name) else {
            throw ServiceError.modelNotFound(name: name, available: registry.models.map(\.name))
        }
        return try ResponseEncoding.json(ModelBody(model, isDefault: model.name == registry.defaultJigsawModel?.name))
    }

    /// `GET /readyz`: 200 once at least one model is loaded and every model serves; 503 with no
    /// models, or with the failed models under `failed` (a model whose network produced unusable
    /// scores: its weights file must be replaced). The body also tells whether the puzzle store
    /// answers (`store.status` `available` or `unavailable: …`).
    ///
    /// A down store does not make the replica unready: solves still answer (without storing),
    /// and a shared store that is down would otherwise take every replica out of the load
    /// balancer at once.
    func readiness(_ request: HTTPRequest) throws -> HTTPResponse {
        struct Store: Encodable {
            var name: String
            var status: String
        }
        struct Failed: Encodable {
            var name: String
            var reason: String
        }
        struct Body: Encodable {
            var status: String
            var models: [String]
            var store: Store
            var failed: [Failed]?
        }
        let names = registry.models.filter(\.isReady).map(\.name)
        let failed = registry.models.compactMap { model in model.failureReason.map { Failed(name: model.name, reason: $0) } }
        let status = registry.models.isEmpty ? "not ready: no models loaded"
            : failed.isEmpty ? "ready" : "not ready: model \(failed.map { "'\($0.name)'" }.joined(separator: ", ")) failed"
        let ready = !registry.models.isEmpty && failed.isEmpty
        var storeStatus = "available"
        do {
            try store.checkAvailability()
        } catch {
            storeStatus = "unavailable: \(error)"
        }
        return try ResponseEncoding.json(Body(status: status, models: names, store: Store(name: store.name, status: storeStatus),
                                              failed: failed.isEmpty ? nil : failed),
                                         status: ready ? .ok : .serviceUnavailable)
    }

    /// `GET /metrics`: the server's counters (`jigsaw_http_*`) and the service's (`jigsaw_*`) in
    /// the Prometheus text format 0.0.4.
    func metricsResponse() -> HTTPResponse {
        var text = serverMetrics()?.prometheusText(prefix: "jigsaw_http") ?? ""
        let counters = self.counters.value
        let store = self.store.statistics
        func escape(_ value: String) -> String {
            value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
                .replacingOccurrences(of: "\n", with: "\\n")
        }
        var lines: [String] = []
        func family(_ name: String, _ type: String, _ help: String, _ samples: [(labels: String, value: Int)]) {
            lines.append("# HELP \(name) \(help)")
            lines.append("# TYPE \(name) \(type)")
            for sample in samples { lines.append("\(name)\(sample.labels) \(sample.value)") }
        }
        let solvedModels = registry.models.filter { $0.jigsawConfiguration != nil }.map(\.name)
        family("jigsaw_puzzles_solved_total", "counter", "Puzzles scored and matched, by model.",
               solvedModels.map { ("{model=\"\(escape($0))\"}", counters.puzzlesSolved[$0] ?? 0) })
        let sortingModels = registry.models.filter { $0.sortingConfiguration != nil }.map(\.name)
        family("jigsaw_lists_sorted_total", "counter", "Lists sorted, by model.",
               sortingModels.map { ("{model=\"\(escape($0))\"}", counters.listsSorted[$0] ?? 0) })
        let batched = registry.models.compactMap { model in
            (model.jigsawBatcher?.currentStatistics ?? model.sortingBatcher?.currentStatistics).map { (model.name, $0) }
        }
        family("jigsaw_forward_passes_total", "counter", "Forward passes run, by model (each serves a batch of requests).",
               batched.map { ("{model=\"\(escape($0.0))\"}", $0.1.batches) })
        lines.append("# HELP jigsaw_batch_size Requests per forward pass, by model (dynamic batching).")
        lines.append("# TYPE jigsaw_batch_size histogram")
        for (name, statistics) in batched {
            var cumulative = 0
            for bound in Self.batchSizeBuckets where bound <= statistics.sizes.count {
                cumulative = statistics.sizes.prefix(bound).reduce(0, +)
                lines.append("jigsaw_batch_size_bucket{model=\"\(escape(name))\",le=\"\(bound)\"} \(cumulative)")
            }
            lines.append("jigsaw_batch_size_bucket{model=\"\(escape(name))\",le=\"+Inf\"} \(statistics.batches)")
            lines.append("jigsaw_batch_size_sum{model=\"\(escape(name))\"} \(statistics.requests)")
            lines.append("jigsaw_batch_size_count{model=\"\(escape(name))\"} \(statistics.batches)")
        }
        family("jigsaw_soft_reconstructions_total", "counter", "Soft reconstructions computed.", [("", counters.softReconstructions)])
        family("jigsaw_samples_served_total", "counter", "Sample puzzles made.", [("", counters.samplesServed)])
        family("jigsaw_scrambles_total", "counter", "Uploads scrambled.", [("", counters.scrambles)])
        family("jigsaw_assemblies_total", "counter", "Digits assembled (POST /v1/assemble).", [("", counters.assemblies)])
        if let entries = store.entries { family("jigsaw_puzzle_store_entries", "gauge", "Puzzles in the store.", [("", entries)]) }
        if let bytes = store.bytes { family("jigsaw_puzzle_store_bytes", "gauge", "Bytes held by the store.", [("", bytes)]) }
        family("jigsaw_puzzle_store_evictions_total", "counter", "Puzzles evicted by the store bounds.", [("", store.evictions)])
        family("jigsaw_puzzle_store_expirations_total", "counter", "Puzzles dropped after their time to live.", [("", store.expirations)])
        let occupancy = workGate.occupancy
        family("jigsaw_work_in_progress", "gauge", "Requests holding a heavy-work slot.", [("", occupancy.working)])
        family("jigsaw_work_waiting", "gauge", "Requests waiting for a heavy-work slot.", [("", occupancy.waiting)])
        family("jigsaw_work_shed_total", "counter", "Requests shed with 503 by the heavy-work queue.", [("", workGate.shedCount)])
        family("jigsaw_work_abandoned_total", "counter", "Requests dropped before their work because their client had gone.",
               [("", workGate.abandonedCount)])
        family("jigsaw_puzzle_store_failures_total", "counter", "Store calls that failed (store unavailable).", [("", store.failures)])
        family("jigsaw_puzzle_store_corrupt_total", "counter", "Stored values unreadable as puzzles.", [("", store.corruptEntries)])
        family("jigsaw_models_loaded", "gauge", "Models loaded.", [("", registry.models.count)])
        family("jigsaw_models_ready", "gauge", "Loaded models that serve (the others failed at run time).",
               [("", registry.models.filter(\.isReady).count)])
        text += lines.joined(separator: "\n") + "\n"
        return HTTPResponse(status: .ok, headers: ["Content-Type": "text/plain; version=0.0.4; charset=utf-8"], body: Array(text.utf8))
    }
}
