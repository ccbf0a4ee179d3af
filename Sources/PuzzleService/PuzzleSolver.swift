import Jigsaw
import NeuralNet
import Permutations
import TensorKit

/// Scrambled pieces made ready for a network and for display.
struct PreparedPieces {
    /// `[1, n, C, p, p]` in [0, 1], resized to the model's piece side and converted to its channels
    /// (`JigsawInference.pieces`).
    var network: Tensor
    /// `[1, n, C', ph, pw]` in [0, 1]: gray stays gray (C' = 1), anything else becomes RGB.
    var display: Tensor
}

/// How a JSON answer encodes its reconstruction.
enum ReconstructionFormat: Equatable {
    /// PNG for gray images, JPEG for colour ones.
    case automatic
    case png
    case jpeg
}

/// The result of scoring and matching one puzzle.
struct Solution {
    /// `X` `[n, n]`.
    var scores: Tensor
    /// `M(X)`.
    var permutation: [Int]
    /// `S(X/τ)[i, permutation[i]]`.
    var confidence: [Float]
    /// `S(X/τ)` `[n, n]` at the confidence temperature.
    var soft: Tensor
    /// The row-marginal error of `soft`.
    var marginalError: Float
}

/// The steps between request data and a solved puzzle; every check that could otherwise hit a
/// precondition in the libraries is made here first.
enum PuzzleSolver {
    /// Cuts a scrambled image into the model's grid of cells (centre-cropping to a multiple of
    /// the grid first).
    /// - Throws: `unprocessable_input` when the image is smaller than the grid.
    static func cells(of image: Image, grid: Int) throws(ServiceError) -> [Image] {
        guard image.width >= grid, image.height >= grid else {
            throw .unprocessableInput("a \(image.width)×\(image.height) image cannot be cut into a \(grid)×\(grid) grid")
        }
        return image.cells(grid: grid)
    }

    /// Builds the network and display tensors of `n` equally sized pieces.
    ///
    /// Each piece is resized on its own to the model's `p × p` (area filter when shrinking,
    /// bilinear when enlarging), so no content leaks between pieces; alpha is composited on black
    /// and colour turned to BT.601 luma for a one-channel model. Display pieces keep their size
    /// unless the assembled image would exceed `displaySize` on its longer side.
    /// - Throws: `unprocessable_input` for a wrong piece count, pieces of different sizes or a
    ///   model whose channel count is not 1 or 3.
    static func prepare(_ cells: [Image], configuration: JigsawNetworkConfiguration,
                        displaySize: Int) throws(ServiceError) -> PreparedPieces {
        let n = configuration.pieceCount, grid = configuration.grid
        guard cells.count == n else {
            throw .unprocessableInput("the model expects \(n) pieces (a \(grid)×\(grid) grid), got \(cells.count)")
        }
        guard configuration.channels == 1 || configuration.channels == 3 else {
            throw .unprocessableInput("models with \(configuration.channels) input channels are not served")
        }
        let (width, height) = (cells[0].width, cells[0].height)
        guard width > 0, height > 0, cells.allSatisfy({ $0.width == width && $0.height == height }) else {
            throw .unprocessableInput("all pieces must have the same non-zero width and height")
        }
        let longest = grid * max(width, height)
        let scale = longest > displaySize ? Double(displaySize) / Double(longest) : 1
        let displayWidth = max(1, Int(Double(width) * scale)), displayHeight = max(1, Int(Double(height) * scale))
        let displayChannels = cells.allSatisfy { $0.channels == 1 } ? 1 : 3
        let display = JigsawInference.resizedCells(cells, width: displayWidth, height: displayHeight,
                                                   channels: displayChannels)
        return PreparedPieces(network: JigsawInference.pieces(cells, configuration: configuration), display: display)
    }

    /// Scores prepared pieces with a network of the model's pool, matches them and reads each
    /// piece's confidence from `S(X/τ)`.
    ///
    /// The pieces are finite (pixels in [0, 1]), so scores that are not finite or implausibly
    /// large are the model's fault: it is taken out of service (``ServiceModel/checkScores(_:)``).
    /// - Parameter temperatureIsDefault: whether τ is the server's confidence temperature rather
    ///   than the client's; a soft matrix that fails at the server's τ is not the client's fault.
    /// - Throws: `model_unavailable` for a failed model or unusable scores, `invalid_parameter`
    ///   for a client's τ too small for the scores.
    ///
    /// The forward pass goes through the model's dynamic batcher: the request may share it with
    /// others that are waiting (`queue` and `network` phases of `timing`; `gate` is set aside
    /// meanwhile, since the batcher bounds the forward passes by itself).
    static func solve(_ pieces: PreparedPieces, model: ServiceModel, temperature: Float, temperatureIsDefault: Bool = false,
                      iterations: Int, timing: ServerTiming = ServerTiming(), gate: WorkGate? = nil) throws(ServiceError) -> Solution {
        guard let batcher = model.jigsawBatcher, let configuration = model.jigsawConfiguration else {
            throw .wrongModelKind(name: model.name, expected: "jigsaw")
        }
        try model.checkAvailable()
        let n = configuration.pieceCount
        precondition(pieces.network.shape == [1, n, configuration.channels, configuration.pieceSize, configuration.pieceSize],
                     "prepared pieces \(pieces.network.shape) do not fit model \(model.name)")
        let (output, ticket) = gate.map { gate in gate.setAside { batcher.run(pieces.network) } } ?? batcher.run(pieces.network)
        timing.record("queue", ticket.queued)
        timing.record("network", ticket.computed)
        let scores = output.reshaped([n, n])
        try model.checkScores(scores)
        do {
            guard let permutation = try timing.measure("match", { try JigsawInference.match(scores).first }) else {
                throw ServiceError.numericalFailure("no matching")
            }
            let soft = try timing.measure("confidence") { () throws(ServiceError) in
                do throws(ServiceError) {
                    return try softMatrix(scores, temperature: temperature, iterations: iterations)
                } catch .invalidParameter(name: "tau", value: _, reason: let reason) where temperatureIsDefault {
                    throw .modelUnavailable(name: model.name, reason: "its scores do not fit the server's confidence temperature \(temperature): \(reason)")
                }
            }
            let confidence = permutation.enumerated().map { row, column in soft.matrix.storage[row * n + column] }
            return Solution(scores: scores, permutation: permutation, confidence: confidence, soft: soft.matrix,
                            marginalError: soft.marginalError)
        } catch {
            throw ServiceError.wrapping(error)
        }
    }

    /// The largest `max |X| / τ` a soft matrix is computed for. In float32 the log-domain
    /// normalisations lose about `6·10⁻⁸ · max |X|/τ` of absolute precision, so beyond this the
    /// result would be noise rather than a doubly-stochastic matrix.
    static let maximumScaledScore: Float = 1e6

    /// `S(X/τ)` of one score matrix.
    /// - Throws: `invalid_parameter` for a τ so small that `max |X|/τ` exceeds
    ///   ``maximumScaledScore`` (the limit τ → 0 is the hard matching), and Sinkhorn errors.
    static func softMatrix(_ scores: Tensor, temperature: Float, iterations: Int) throws(ServiceError) -> (matrix: Tensor, marginalError: Float) {
        let largest = scores.storage.reduce(Float(0)) { max($0, abs($1)) }
        if largest / temperature > maximumScaledScore {
            throw .invalidParameter(
                name: "tau", value: String(temperature),
                reason: "too small for these scores (max |X|/tau = \(largest / temperature) exceeds \(maximumScaledScore)); use tau >= \(largest / maximumScaledScore), or the hard solution")
        }
        do {
            let result = try JigsawInference.soften(scores, temperature: temperature, iterations: iterations)
            return (result.matrix, result.marginalError.first ?? 0)
        } catch {
            throw ServiceError.wrapping(error)
        }
    }

    /// The bytes and media type of a reconstruction in `format`: `automatic` is PNG for gray
    /// images (digits: lossless, and small) and JPEG at quality 90 for colour ones (a photo's
    /// PNG is several times larger and several times slower to encode, and JPEG is what a
    /// phone shows a photo as).
    static func reconstruction(_ images: Tensor, format: ReconstructionFormat) throws(ServiceError) -> (bytes: [UInt8], mediaType: String) {
        let channels = images.rank == 4 ? images.shape[1] : images.shape[0]
        let jpeg = format == .jpeg || (format == .automatic && channels == 3)
        guard jpeg else { return (try png(images), "image/png") }
        let shape = images.rank == 4 ? Array(images.shape.dropFirst()) : images.shape
        do {
            return (try JPEG.encode(Image(tensor: images.reshaped(shape)), quality: 90), "image/jpeg")
        } catch {
            throw ServiceError.wrapping(error)
        }
    }

    /// PNG bytes of an image tensor `[1, C, H, W]` or `[C, H, W]` in [0, 1].
    static func png(_ images: Tensor) throws(ServiceError) -> [UInt8] {
        let shape = images.rank == 4 ? Array(images.shape.dropFirst()) : images.shape
        do {
            return try PNG.encode(Image(tensor: images.reshaped(shape)), fast: true)
        } catch {
            throw ServiceError.wrapping(error)
        }
    }

    /// Scrambles the cells of an image with `π = generator.permutation(n)`: slot `s` receives
    /// cell `π[s]`, so `π` is the answer in the service's `permutation[i] = j` convention.
    static func scramble(_ cells: [Image], generator: inout SeededGenerator) -> (cells: [Image], permutation: [Int]) {
        let permutation = generator.permutation(cells.count)
        return (permutation.map { cells[$0] }, permutation)
    }
}
