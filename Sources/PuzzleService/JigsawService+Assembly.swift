import Foundation
import HTTPCore
import Jigsaw
import NeuralNet
import TensorKit

/// The JSON body of `POST /v1/assemble`: `image` or `pieces`, and the target digit.
struct AssembleRequestBody: Decodable {
    var image: String?
    var pieces: [PieceInput]?
    var target: WholeNumber?
    var tau: Double?
    var iterations: WholeNumber?
}

/// The answer of `POST /v1/assemble`.
struct AssembleBody: Encodable {
    struct Picture: Encodable {
        /// Base64 PNG, `image_size` pixels square.
        var png: String
        var verdict: VerdictBody
    }
    struct VerdictBody: Encodable {
        var digit: Int
        var probabilities: [Float]
    }
    struct Soft: Encodable {
        var tau: Float
        var iterations: Int
        var png: String
        var verdict: VerdictBody
    }
    var model: String
    var target: Int
    var grid: Int
    var pieceSize: Int
    var imageSize: Int
    /// `cells[i]`: the cell of piece `i` in the assembly; piece `i` is cell `i` of `source`.
    var cells: [Int]
    /// Whether the classifier calls the assembly the target.
    var recognised: Bool
    /// `digit`: an uploaded picture normalised the way MNIST prepares digits; `pieces`: as given.
    var input: String
    var source: Picture
    var assembled: Picture
    var soft: Soft?
}

/// `GET /v1/assemble`: what the assembler is and how well it does.
struct AssemblerBody: Encodable {
    var model: String
    var grid: Int
    var pieceSize: Int
    var imageSize: Int
    var targets: Int
    /// The `assembly.*` entries of the weights file (the share recognised on the test set, ...).
    var evaluation: [String: String]
    /// The classifier's test accuracy.
    var classifierTestAccuracy: String?
}

extension JigsawService {
    /// `GET /v1/assemble`.
    func describeAssembler(_ request: HTTPRequest) throws -> HTTPResponse {
        guard let assembler else { throw ServiceError.noModel(kind: "assembly") }
        let c = assembler.configuration
        return try ResponseEncoding.json(AssemblerBody(
            model: assembler.name, grid: c.grid, pieceSize: c.pieceSize, imageSize: c.imageSize, targets: c.scoreHeads,
            evaluation: assembler.metadata.filter { $0.key.hasPrefix("assembly.") },
            classifierTestAccuracy: assembler.classifierMetadata["eval.test_accuracy"]))
    }

    /// `POST /v1/assemble?target=K[&tau=T][&iterations=N]`: a picture of one digit (PNG, JPEG or
    /// WebP), or JSON with `image` (base64) or `pieces` (the model's piece count, in the cell order
    /// of their source) and `target`. Answers the arrangement, the source and the assembly as
    /// PNGs with the classifier's verdicts, or the assembly itself with `Accept: image/png`.
    func assemble(_ request: HTTPRequest) throws -> HTTPResponse {
        guard let assembler else { throw ServiceError.noModel(kind: "assembly") }
        let c = assembler.configuration
        let wantsPNG = try request.wantsPNG()
        let pieces: Tensor, input: String
        let targetValue: Int?, temperature: Float?, iterations: Int
        switch try RequestContent.kind(of: request, accepting: [.image, .json]) {
        case .image:
            targetValue = try request.integer("target", in: 0...(c.scoreHeads - 1))
            guard targetValue != nil else { throw Self.missingTarget(classes: c.scoreHeads) }
            temperature = try request.temperature(default: nil)
            iterations = try request.iterations(default: configuration.defaultIterations, maximum: configuration.maximumIterations)
            pieces = try digitPieces(RequestContent.decodeImage(request.body, maximumSamples: configuration.maximumImageSamples),
                                     configuration: c)
            input = "digit"
        case .json:
            let body = try RequestContent.decode(AssembleRequestBody.self, from: request.body)
            if let target = body.target?.value {
                guard (0..<c.scoreHeads).contains(target) else {
                    throw ServiceError.invalidParameter(name: "target", value: String(target), reason: "must be an integer in 0...\(c.scoreHeads - 1)")
                }
                targetValue = target
            } else {
                targetValue = try request.integer("target", in: 0...(c.scoreHeads - 1))
            }
            temperature = try request.temperature(body.tau, default: nil)
            iterations = try request.iterations(body.iterations?.value, default: configuration.defaultIterations,
                                                maximum: configuration.maximumIterations)
            switch (body.image, body.pieces) {
            case (let image?, nil):
                let bytes = try RequestContent.base64(image, field: "image")
                pieces = try digitPieces(RequestContent.decodeImage(bytes, maximumSamples: configuration.maximumImageSamples),
                                         configuration: c)
                input = "digit"
            case (nil, let list?):
                let cells = try pieceImages(list)
                guard cells.count == c.pieceCount else {
                    throw ServiceError.unprocessableInput("model '\(assembler.name)' assembles \(c.pieceCount) pieces; got \(cells.count)")
                }
                pieces = JigsawInference.pieces(cells.map { $0.converted(toChannels: 1) }, configuration: c)
                input = "pieces"
            default:
                throw ServiceError.invalidJSON("give exactly one of 'image' (a base64 picture of a digit) and 'pieces' (a list of pieces)")
            }
        }
        guard let target = targetValue else { throw Self.missingTarget(classes: c.scoreHeads) }
        let result = try assembler.assemble(pieces: pieces, target: target, temperature: temperature, iterations: iterations)
        counters.update { $0.assemblies += 1 }
        let assembledPNG = try PuzzleSolver.png(result.assembled)
        if wantsPNG {
            return ResponseEncoding.png(assembledPNG, headers: [
                ("X-Model", assembler.name), ("X-Target", String(target)),
                ("X-Verdict", String(result.verdict.digit)),
                ("X-Cells", result.cells.map(String.init).joined(separator: ",")),
            ])
        }
        func verdict(_ v: DigitAssembler.Verdict) -> AssembleBody.VerdictBody {
            AssembleBody.VerdictBody(digit: v.digit, probabilities: v.probabilities.map { ($0 * 1e5).rounded() / 1e5 })
        }
        var soft: AssembleBody.Soft?
        if let tensor = result.soft, let softVerdict = result.softVerdict, let temperature {
            soft = AssembleBody.Soft(tau: temperature, iterations: iterations,
                                     png: ResponseEncoding.base64(try PuzzleSolver.png(tensor)), verdict: verdict(softVerdict))
        }
        return try ResponseEncoding.json(AssembleBody(
            model: assembler.name, target: target, grid: c.grid, pieceSize: c.pieceSize, imageSize: c.imageSize,
            cells: result.cells, recognised: result.verdict.digit == target, input: input,
            source: .init(png: ResponseEncoding.base64(try PuzzleSolver.png(result.source)), verdict: verdict(result.sourceVerdict)),
            assembled: .init(png: ResponseEncoding.base64(assembledPNG), verdict: verdict(result.verdict)),
            soft: soft))
    }

    static func missingTarget(classes: Int) -> ServiceError {
        .invalidParameter(name: "target", value: "", reason: "is required: the digit to assemble, 0...\(classes - 1)")
    }

    /// The pieces of a picture of a digit: normalised as MNIST prepares its digits, then cut.
    private func digitPieces(_ image: Image, configuration c: JigsawNetworkConfiguration) throws(ServiceError) -> Tensor {
        let digit: Image
        do {
            digit = try image.mnistDigit(side: c.imageSize, box: max(1, c.imageSize * 5 / 7))
        } catch {
            throw ServiceError.unprocessableInput("no digit found: \(error)")
        }
        return Puzzle.cut(digit.tensor(channels: 1).reshaped([1, 1, c.imageSize, c.imageSize]), grid: c.grid)
    }
}
