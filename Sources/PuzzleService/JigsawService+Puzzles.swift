import Foundation
import HTTPCore
import Jigsaw
import NeuralNet
import Permutations
import TensorKit

extension JigsawService {
    // MARK: - POST /v1/solve

    /// `POST /v1/solve[?model=NAME][&tau=T][&iterations=K]`: a scrambled PNG, or JSON with
    /// `pieces` (base64 PNGs or number arrays) or `image` (base64 PNG). JSON fields override the
    /// query. Answers the stored puzzle as JSON, or the reconstruction itself with
    /// `Accept: image/png` (headers `X-Puzzle-Id`, `X-Permutation`, `X-Model`).
    func solve(_ request: HTTPRequest) throws -> HTTPResponse {
        let cells: [Image], temperature: Float?, iterations: Int
        let choice: ModelChoice, origin: String
        let timing = ServerTiming()
        // Every parameter is checked before the network runs and a puzzle is stored.
        let wantsPNG = try request.wantsPNG()
        let format = try request.reconstructionFormat()
        let grid = try request.integer("grid", in: 1...configuration.maximumScrambleGrid)
        switch try RequestContent.kind(of: request, accepting: [.image, .json]) {
        case .image:
            temperature = try request.temperature(default: nil)
            iterations = try request.iterations(default: configuration.defaultIterations, maximum: configuration.maximumIterations)
            let image = try timing.measure("decode") { () throws(ServiceError) in
                try RequestContent.decodeImage(request.body, maximumSamples: configuration.maximumImageSamples,
                                               keeping: RequestContent.solvedSide(displaySize: configuration.displaySize))
            }
            choice = try timing.measure("detect") { () throws(ServiceError) in
                try registry.chooseJigsawModel(named: request.queryParameters["model"], grid: grid, image: image,
                                               colourful: image.isColourful)
            }
            cells = try timing.measure("cut") { () throws(ServiceError) in try PuzzleSolver.cells(of: image, grid: choice.configuration.grid) }
            origin = "upload"
        case .json:
            let body = try RequestContent.decode(SolveRequestBody.self, from: request.body)
            temperature = try request.temperature(body.tau, default: nil)
            iterations = try request.iterations(body.iterations?.value, default: configuration.defaultIterations,
                                                maximum: configuration.maximumIterations)
            let name = body.model ?? request.queryParameters["model"]
            switch (body.pieces, body.image) {
            case (let pieces?, nil):
                cells = try pieceImages(pieces)
                choice = try registry.chooseJigsawModel(named: name, grid: grid, pieceCount: cells.count, image: nil,
                                                        colourful: cells.contains { $0.isColourful })
                origin = "pieces"
            case (nil, let image?):
                let bytes = try RequestContent.base64(image, field: "image")
                let decoded = try RequestContent.decodeImage(bytes, maximumSamples: configuration.maximumImageSamples,
                                                             keeping: RequestContent.solvedSide(displaySize: configuration.displaySize))
                choice = try registry.chooseJigsawModel(named: name, grid: grid, image: decoded, colourful: decoded.isColourful)
                cells = try PuzzleSolver.cells(of: decoded, grid: choice.configuration.grid)
                origin = "upload"
            default:
                throw ServiceError.invalidJSON("give exactly one of 'pieces' (a list of pieces) and 'image' (a base64 PNG)")
            }
        }
        let (model, network) = (choice.model, choice.configuration)
        let puzzle = try solvePuzzle(cells, model: model, configuration: network, temperature: temperature,
                                     iterations: iterations, origin: origin, timing: timing)
        let warnings = choice.warnings + (puzzle.storeWarning.map { [$0] } ?? [])
        if wantsPNG {
            var headers = [
                ("X-Puzzle-Id", puzzle.stored.id), ("X-Model", model.name),
                ("X-Permutation", puzzle.stored.permutation.map(String.init).joined(separator: ",")),
            ]
            if puzzle.storeWarning == nil {
                headers.append(("Content-Location", "/v1/puzzles/\(puzzle.stored.id)/solution.png"))
            } else {
                headers.append(("X-Puzzle-Stored", "false"))
            }
            if let detection = choice.detection { headers.append(("X-Detected-Grid", String(detection.grid))) }
            for warning in warnings { headers.append(("Warning", "299 - \"\(warning.replacingOccurrences(of: "\"", with: "'"))\"")) }
            let png = try timing.measure("encode") { () throws(ServiceError) in
                try PuzzleSolver.png(Puzzle.assemble(puzzle.stored.pieces, permutations: [puzzle.stored.permutation]))
            }
            headers.append(("Server-Timing", timing.header))
            return ResponseEncoding.png(png, headers: headers)
        }
        var response = try timing.measure("encode") { () throws -> HTTPResponse in
            var body = try puzzleBody(puzzle.stored, includeImages: true, soft: puzzle.soft, format: format,
                                      isStored: puzzle.storeWarning == nil)
            body.gridDetection = choice.detection.map(GridDetectionBody.init)
            body.warnings = warnings.isEmpty ? nil : warnings
            return try ResponseEncoding.json(body)
        }
        response.headers.set(name: "Server-Timing", value: timing.header)
        return response
    }

    /// The images of a JSON piece list, checked against the service's limits.
    func pieceImages(_ pieces: [PieceInput]) throws(ServiceError) -> [Image] {
        guard !pieces.isEmpty else { throw .unprocessableInput("the piece list is empty") }
        var images: [Image] = []
        var samples = 0
        for (index, piece) in pieces.enumerated() {
            let field = "pieces[\(index)]"
            let image: Image
            switch piece {
            case .png(let text):
                let bytes = try RequestContent.base64(text, field: field)
                image = try RequestContent.decodeImage(bytes, maximumSamples: configuration.maximumImageSamples)
            case .plane(let plane):
                image = try RequestContent.image(planes: [plane], field: field)
            case .planes(let planes):
                image = try RequestContent.image(planes: planes, field: field)
            }
            samples += image.width * image.height * image.channels
            guard samples <= configuration.maximumPieceListSamples else {
                throw .unprocessableInput("the pieces hold more than \(configuration.maximumPieceListSamples) samples")
            }
            images.append(image)
        }
        return images
    }

    /// Scores, matches and stores a puzzle made of scrambled cells.
    ///
    /// A store that is down or refuses the puzzle does not fail the solve: the answer is worth
    /// more to the client than the links to it, so the solution is returned with `storeWarning`
    /// saying why it was not stored (the routes under `/v1/puzzles/{id}` will not find it).
    func solvePuzzle(_ cells: [Image], model: ServiceModel, configuration network: JigsawNetworkConfiguration,
                     temperature: Float?, iterations: Int, origin: String,
                     truth: [Int]? = nil, timing: ServerTiming = ServerTiming()
    ) throws(ServiceError) -> (stored: StoredPuzzle, soft: SoftMatrixBody?, storeWarning: String?) {
        let prepared = try timing.measure("resize") { () throws(ServiceError) in
            try PuzzleSolver.prepare(cells, configuration: network, displaySize: configuration.displaySize)
        }
        let tau = temperature ?? configuration.confidenceTemperature
        let solution = try PuzzleSolver.solve(prepared, model: model, temperature: tau, temperatureIsDefault: temperature == nil,
                                              iterations: iterations, timing: timing, gate: workGate)
        let stored = StoredPuzzle(id: makeIdentifier(), model: model.name, grid: network.grid, pieces: prepared.display,
                                  scores: solution.scores, permutation: solution.permutation,
                                  confidence: solution.confidence, truth: truth, origin: origin)
        var storeWarning: String?
        do {
            try timing.measure("store") { () throws(PuzzleStoreError) in try store.insert(stored) }
        } catch {
            storeWarning = "the puzzle was solved but not stored, so its /v1/puzzles links will not find it: \(error)"
        }
        counters.update { $0.puzzlesSolved[model.name, default: 0] += 1 }
        let soft = temperature.map { SoftMatrixBody(solution.soft, tau: $0, iterations: iterations, marginalError: solution.marginalError) }
        return (stored, soft, storeWarning)
    }

    /// The JSON description of a stored puzzle.
    func puzzleBody(_ puzzle: StoredPuzzle, includeImages: Bool, soft: SoftMatrixBody? = nil,
                    scrambled: Bool = false, sample: SampleBody? = nil, scores: Bool = false,
                    format: ReconstructionFormat = .automatic, isStored: Bool = true) throws(ServiceError) -> PuzzleBody {
        let reconstruction = includeImages
            ? try PuzzleSolver.reconstruction(Puzzle.assemble(puzzle.pieces, permutations: [puzzle.permutation]), format: format)
            : nil
        let scrambledImage = scrambled ? ResponseEncoding.base64(try PuzzleSolver.png(Puzzle.join(puzzle.pieces))) : nil
        let correct = puzzle.truth.map { truth in zip(truth, puzzle.permutation).filter { $0 == $1 }.count }
        return PuzzleBody(id: puzzle.id, model: puzzle.model, grid: puzzle.grid, permutation: puzzle.permutation,
                          confidence: puzzle.confidence, reconstruction: reconstruction.map { ResponseEncoding.base64($0.bytes) },
                          reconstructionType: reconstruction?.mediaType, scrambled: scrambledImage,
                          scores: scores ? ResponseEncoding.rows(puzzle.scores) : nil, soft: soft,
                          truth: puzzle.truth, correctPieces: correct, sample: sample, origin: puzzle.origin,
                          created: ResponseEncoding.timestamp(puzzle.created), links: isStored ? PuzzleLinks(id: puzzle.id) : nil)
    }

    // MARK: - /v1/puzzles/{id}...

    private func storedPuzzle(_ request: HTTPRequest) throws(ServiceError) -> StoredPuzzle {
        let id = request.pathParameters["id"] ?? ""
        let found: StoredPuzzle?
        do {
            found = try store.puzzle(id: id)
        } catch {
            throw ServiceError.wrapping(error)
        }
        guard let puzzle = found else { throw .puzzleNotFound(id: id) }
        return puzzle
    }

    /// `GET /v1/puzzles/{id}`: the stored puzzle with its scores and solution.
    func describePuzzle(_ request: HTTPRequest) throws -> HTTPResponse {
        let puzzle = try storedPuzzle(request)
        return try ResponseEncoding.json(try puzzleBody(puzzle, includeImages: false, scores: true))
    }

    /// `GET /v1/puzzles/{id}/soft?tau=T[&iterations=K][&format=png|json]`: `S(X/τ)` recomputed
    /// from the stored scores, applied to the pieces (`out[j] = Σ_i P[i, j] · piece[i]`) as a PNG,
    /// or the matrix itself as JSON.
    func softReconstruction(_ request: HTTPRequest) throws -> HTTPResponse {
        let puzzle = try storedPuzzle(request)
        let tau = try request.temperature(default: 1) ?? 1
        let iterations = try request.iterations(default: configuration.defaultIterations, maximum: configuration.maximumIterations)
        let wantsPNG = try request.wantsPNG(defaultPNG: true)
        let soft = try PuzzleSolver.softMatrix(puzzle.scores, temperature: tau, iterations: iterations)
        counters.update { $0.softReconstructions += 1 }
        if wantsPNG {
            let n = puzzle.permutation.count
            let image = Puzzle.assemble(puzzle.pieces, soft: soft.matrix.reshaped([1, n, n]))
            return ResponseEncoding.png(try PuzzleSolver.png(image), headers: [
                ("X-Tau", String(tau)), ("X-Iterations", String(iterations)),
            ])
        }
        struct Body: Encodable {
            var id: String
            var soft: SoftMatrixBody
        }
        return try ResponseEncoding.json(Body(id: puzzle.id, soft: SoftMatrixBody(
            soft.matrix, tau: tau, iterations: iterations, marginalError: soft.marginalError)))
    }

    /// `GET /v1/puzzles/{id}/scrambled.png`.
    func scrambledImage(_ request: HTTPRequest) throws -> HTTPResponse {
        let puzzle = try storedPuzzle(request)
        return ResponseEncoding.png(try PuzzleSolver.png(Puzzle.join(puzzle.pieces)))
    }

    /// `GET /v1/puzzles/{id}/solution.png`.
    func solutionImage(_ request: HTTPRequest) throws -> HTTPResponse {
        let puzzle = try storedPuzzle(request)
        return ResponseEncoding.png(try PuzzleSolver.png(Puzzle.assemble(puzzle.pieces, permutations: [puzzle.permutation])))
    }

    // MARK: - POST /v1/scramble

    /// `POST /v1/scramble?grid=G[&seed=S][&format=png|json]`: cuts an uploaded PNG into a
    /// `G × G` grid (centre-cropped to a multiple of G) and shuffles the cells with
    /// `π = SeededGenerator(seed: S).permutation(G²)`. JSON by default (base64 PNG plus `π`); with
    /// `Accept: image/png` the PNG with `X-Permutation`, `X-Grid` and `X-Seed` headers.
    func scrambleUpload(_ request: HTTPRequest) throws -> HTTPResponse {
        _ = try RequestContent.kind(of: request, accepting: [.image])
        let grid = try request.integer("grid", in: 1...configuration.maximumScrambleGrid) ?? 3
        let seed = try request.seed() ?? makeSeed()
        let wantsPNG = try request.wantsPNG()
        let format = try request.reconstructionFormat()
        let image = try RequestContent.decodeImage(request.body, maximumSamples: configuration.maximumImageSamples)
        let cells = try PuzzleSolver.cells(of: image, grid: grid)
        var generator = SeededGenerator(seed: seed)
        let scrambled = PuzzleSolver.scramble(cells, generator: &generator)
        let output = Image.tiled(scrambled.cells, grid: grid)
        let bytes: [UInt8]
        do {
            bytes = try PNG.encode(output)
        } catch {
            throw ServiceError.wrapping(error)
        }
        counters.update { $0.scrambles += 1 }
        if wantsPNG {
            return ResponseEncoding.png(bytes, headers: [
                ("X-Permutation", scrambled.permutation.map(String.init).joined(separator: ",")),
                ("X-Grid", String(grid)), ("X-Seed", String(seed)),
            ])
        }
        return try ResponseEncoding.json(ScrambleBody(grid: grid, seed: seed, width: output.width, height: output.height,
                                                      permutation: scrambled.permutation, image: ResponseEncoding.base64(bytes)))
    }

    // MARK: - /v1/samples

    /// `GET /v1/samples`: the sample datasets and their sizes.
    func listSamples(_ request: HTTPRequest) throws -> HTTPResponse {
        struct Dataset: Encodable {
            var name: String
            var count: Int
            var width: Int
            var height: Int
            var channels: Int
        }
        struct Body: Encodable { var datasets: [Dataset] }
        let datasets = samples.datasets.sorted { $0.key < $1.key }.map { name, dataset in
            Dataset(name: name, count: dataset.count, width: dataset.width, height: dataset.height, channels: dataset.channels)
        }
        return try ResponseEncoding.json(Body(datasets: datasets))
    }

    /// `GET /v1/samples/{k}?model=NAME[&dataset=D][&seed=S][&tau=T]`: test image `k` of the
    /// model's dataset, scrambled with seed `S` (default `k`), solved and stored like an upload;
    /// the answer also carries the scrambled image, the truth and how many pieces are right.
    func sample(_ request: HTTPRequest) throws -> HTTPResponse {
        let text = request.pathParameters["k"] ?? ""
        let (model, network) = try registry.jigsawModel(named: request.queryParameters["model"])
        let (name, dataset) = try samples.dataset(named: request.queryParameters["dataset"], for: model)
        guard let index = Int(text), (0..<dataset.count).contains(index) else {
            throw ServiceError.sampleNotFound("no sample '\(ServiceError.excerpt(text))' in \(name); samples are 0...\(dataset.count - 1)")
        }
        let seed = try request.seed() ?? UInt64(index)
        let temperature = try request.temperature(default: nil)
        let iterations = try request.iterations(default: configuration.defaultIterations, maximum: configuration.maximumIterations)
        let format = try request.reconstructionFormat()
        // Every GET makes and stores a new puzzle; HEAD says what a GET would answer without
        // doing that work (RFC 9110 §9.3.2 lets it leave out the content's length).
        if request.method == .head {
            return HTTPResponse(status: .ok, headers: ["Content-Type": "application/json", "Cache-Control": "no-store"], body: [])
        }
        let image = dataset.image(at: index)
        let cells = try PuzzleSolver.cells(of: image, grid: network.grid)
        var generator = SeededGenerator(seed: seed)
        let scrambled = PuzzleSolver.scramble(cells, generator: &generator)
        let puzzle = try solvePuzzle(scrambled.cells, model: model, configuration: network, temperature: temperature,
                                     iterations: iterations, origin: "sample \(name) \(index)", truth: scrambled.permutation)
        counters.update { $0.samplesServed += 1 }
        let sample = SampleBody(dataset: name, index: index, label: dataset.labels?[index], seed: seed)
        var body = try puzzleBody(puzzle.stored, includeImages: true, soft: puzzle.soft, scrambled: true, sample: sample,
                                  format: format, isStored: puzzle.storeWarning == nil)
        body.warnings = puzzle.storeWarning.map { [$0] }
        return try ResponseEncoding.json(body)
    }
}
