import Foundation
import HTTPCore
import Jigsaw
import NeuralNet
import TensorKit

/// A JSON number or string (evaluation figures are numbers when they parse as numbers).
enum JSONScalar: Encodable, Equatable {
    case number(Double)
    case string(String)

    init(_ text: String) {
        if let value = Double(text), value.isFinite { self = .number(value) } else { self = .string(text) }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .number(let value): try container.encode(value)
        case .string(let text): try container.encode(text)
        }
    }
}

/// Links to a stored puzzle's resources.
package struct PuzzleLinks: Encodable {
    package var puzzle: String
    package var scrambled: String
    package var solution: String
    package var soft: String

    enum CodingKeys: String, CodingKey {
        case puzzle = "self", scrambled, solution, soft
    }

    package init(id: String) {
        let base = "/v1/puzzles/\(id)"
        puzzle = base
        scrambled = base + "/scrambled.png"
        solution = base + "/solution.png"
        soft = base + "/soft?tau=1"
    }
}

/// A soft matrix in a response.
package struct SoftMatrixBody: Encodable {
    package var tau: Float
    package var iterations: Int
    /// `matrix[i][j] = S(X/τ)[i, j]`.
    package var matrix: [[Float]]
    /// `Σ_i |Σ_j P_ij − 1|` after the last iteration (columns sum to 1 exactly).
    package var rowMarginalError: Float

    package init(_ matrix: Tensor, tau: Float, iterations: Int, marginalError: Float) {
        self.tau = tau
        self.iterations = iterations
        self.matrix = ResponseEncoding.rows(matrix)
        rowMarginalError = marginalError
    }
}

/// The JSON answer of `POST /v1/solve`, `GET /v1/samples/{k}` and `GET /v1/puzzles/{id}`.
package struct PuzzleBody: Encodable {
    package var id: String
    package var model: String
    package var grid: Int
    package var permutation: [Int]
    package var confidence: [Float]
    /// The reconstructed image, base64: PNG for gray puzzles, JPEG for colour ones unless the
    /// request asked otherwise (`reconstruction_type` says which).
    package var reconstruction: String?
    /// The media type of `reconstruction`.
    package var reconstructionType: String?
    /// The scrambled image (base64 PNG), for samples.
    package var scrambled: String?
    /// The network's scores, on `GET /v1/puzzles/{id}`.
    package var scores: [[Float]]?
    package var soft: SoftMatrixBody?
    /// The correct permutation when known (samples), and how many pieces the solution places right.
    package var truth: [Int]?
    package var correctPieces: Int?
    package var sample: SampleBody?
    package var origin: String
    package var created: String
    /// The puzzle's routes; absent when the store could not keep it (see `warnings`).
    package var links: PuzzleLinks?
    /// How the grid was found when the request named neither a model nor a grid.
    package var gridDetection: GridDetectionBody? = nil
    /// Notes on the input or the choice of model (e.g. a colour photo given to a digit model).
    package var warnings: [String]? = nil

    package init(id: String, model: String, grid: Int, permutation: [Int], confidence: [Float], reconstruction: String? = nil,
                 reconstructionType: String? = nil, scrambled: String? = nil, scores: [[Float]]? = nil,
                 soft: SoftMatrixBody? = nil, truth: [Int]? = nil, correctPieces: Int? = nil, sample: SampleBody? = nil,
                 origin: String, created: String, links: PuzzleLinks? = nil, gridDetection: GridDetectionBody? = nil,
                 warnings: [String]? = nil) {
        self.id = id
        self.model = model
        self.grid = grid
        self.permutation = permutation
        self.confidence = confidence
        self.reconstruction = reconstruction
        self.reconstructionType = reconstructionType
        self.scrambled = scrambled
        self.scores = scores
        self.soft = soft
        self.truth = truth
        self.correctPieces = correctPieces
        self.sample = sample
        self.origin = origin
        self.created = created
        self.links = links
        self.gridDetection = gridDetection
        self.warnings = warnings
    }
}

/// The grid ``GridDetector`` found in a scrambled image: the grid, its confidence in `[0, 1]` and
/// the score of every candidate grid served.
package struct GridDetectionBody: Encodable {
    package var grid: Int
    package var confidence: Float
    package var scores: [String: Float]

    package init(grid: Int, confidence: Float, scores: [String: Float]) {
        self.grid = grid
        self.confidence = confidence
        self.scores = scores
    }

    package init(_ detection: GridDetector.Detection) {
        grid = detection.grid
        confidence = detection.confidence
        scores = Dictionary(uniqueKeysWithValues: detection.scores.map { (String($0.key), $0.value) })
    }
}

/// Where a sample puzzle came from.
package struct SampleBody: Encodable {
    package var dataset: String
    package var index: Int
    package var label: Int?
    package var seed: UInt64

    package init(dataset: String, index: Int, label: Int?, seed: UInt64) {
        self.dataset = dataset
        self.index = index
        self.label = label
        self.seed = seed
    }
}

/// The JSON answer of `POST /v1/scramble`.
struct ScrambleBody: Encodable {
    var grid: Int
    var seed: UInt64
    var width: Int
    var height: Int
    /// `permutation[s]` is the original cell now at scrambled slot `s`: the correct answer in the
    /// solve convention (scrambled piece `s` belongs in cell `permutation[s]`).
    var permutation: [Int]
    var image: String
}

/// The JSON answer of `POST /v1/sort`.
struct SortBody: Encodable {
    var model: String
    var count: Int
    var padded: Int
    /// `permutation[i]` is the sorted position of number `i`.
    var permutation: [Int]
    var sorted: [Double]
    var soft: SoftMatrixBody?
}

/// One model in `GET /v1/models`.
struct ModelBody: Encodable {
    var name: String
    var kind: String
    var architecture: String
    var source: String
    var isDefault: Bool
    var inferred: Bool
    var notes: [String]
    var parameters: Int
    var configuration: [String: JSONScalar]
    var evaluation: [String: JSONScalar]
    var metadata: [String: String]
    /// False once the model failed at run time (its requests get 503).
    var ready: Bool
    /// Why it failed, when it did.
    var failure: String?
    /// Whether the tensor data matched the file's `checksum.sha256`.
    var checksumVerified: Bool

    init(_ model: ServiceModel, isDefault: Bool) {
        name = model.name
        kind = model.kind.name
        architecture = model.metadata["architecture"] ?? ""
        source = (model.source as NSString).lastPathComponent
        self.isDefault = isDefault
        inferred = model.isInferred
        notes = model.notes
        parameters = model.parameterCount
        let configurationMetadata: [String: String]
        switch model.kind {
        case .jigsaw(let configuration): configurationMetadata = configuration.metadata
        case .sorting(let configuration): configurationMetadata = configuration.metadata
        }
        configuration = configurationMetadata.filter { $0.key != "architecture" }.mapValues(JSONScalar.init)
        evaluation = model.evaluation.mapValues(JSONScalar.init)
        metadata = model.metadata
        failure = model.failureReason
        ready = failure == nil
        checksumVerified = model.isChecksumVerified
    }
}

/// Shared JSON encoding for responses.
package enum ResponseEncoding {
    package static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    /// A JSON response; a value that cannot be encoded (a non-finite float) becomes a JSON error.
    static func json(_ value: some Encodable, status: HTTPStatus = .ok) throws(ServiceError) -> HTTPResponse {
        do {
            return HTTPResponse.json(try encoder().encode(value), status: status)
        } catch {
            throw .numericalFailure("the response holds numbers JSON cannot carry: \(error)")
        }
    }

    /// A JSON response written by the value itself (the same bytes as through ``encoder()``).
    static func json(_ value: some JSONWritable, status: HTTPStatus = .ok) throws(ServiceError) -> HTTPResponse {
        var writer = JSONWriter(capacity: 4096)
        do {
            try value.write(to: &writer)
        } catch {
            throw .numericalFailure("the response holds numbers JSON cannot carry: \(error)")
        }
        return HTTPResponse.json(writer.bytes, status: status)
    }

    /// A PNG response.
    static func png(_ bytes: [UInt8], headers extra: [(String, String)] = []) -> HTTPResponse {
        var headers: HTTPHeaders = ["Content-Type": "image/png"]
        for (name, value) in extra { headers[name] = value }
        return HTTPResponse(status: .ok, headers: headers, body: bytes)
    }

    /// The rows of an `[n, m]` tensor.
    static func rows(_ matrix: Tensor) -> [[Float]] {
        precondition(matrix.rank == 2, "rows of a matrix, got \(matrix.shape)")
        let columns = matrix.shape[1]
        return (0..<matrix.shape[0]).map { Array(matrix.storage[($0 * columns)..<(($0 + 1) * columns)]) }
    }

    static func base64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }

    static func timestamp(_ date: Date) -> String {
        date.formatted(.iso8601)
    }
}
