import Foundation
import Jigsaw
import NeuralNet
import Permutations
import TensorKit

/// The assembly network and the classifier that judges its digits (Mena et al. 2018, §4.3),
/// pooled for concurrent requests: `POST /v1/assemble`.
public final class DigitAssembler: Sendable {
    /// The assembly model's name (its file stem).
    public let name: String
    /// Its network configuration (`scoreHeads` targets).
    public let configuration: JigsawNetworkConfiguration
    /// The assembly weights file's metadata (training and `assembly.*` figures).
    public let metadata: [String: String]
    /// The classifier's metadata (its test accuracy).
    public let classifierMetadata: [String: String]

    private let pool: Locked<[(network: JigsawNetwork, classifier: DigitClassifier)]>
    private let available: DispatchSemaphore

    /// Loads both files; `instances` copies of each serve requests at once.
    ///
    /// - Throws: ``ModelLoadError`` naming the file that is unreadable, damaged or of the wrong kind.
    public init(assemblyFile: String, classifierFile: String, instances: Int = 2) throws(ModelLoadError) {
        precondition(instances >= 1, "an assembler needs at least one instance")
        let name = ServiceModel.name(forFile: assemblyFile)
        let loaded: JigsawModelFile.Loaded
        do {
            loaded = try JigsawModelFile.load(contentsOfFile: assemblyFile)
        } catch {
            throw .invalidFile(path: assemblyFile, reason: String(describing: error))
        }
        let c = loaded.network.configuration
        guard c.scoreHeads > 1, c.channels == 1 else {
            throw .invalidModel(name: name, reason: "it is not an assembly network (one gray input, several score heads)")
        }
        let judge: DigitClassifier, classifierMetadata: [String: String]
        do {
            (judge, classifierMetadata) = try DigitClassifierFile.load(classifierFile)
        } catch {
            throw .invalidFile(path: classifierFile, reason: String(describing: error))
        }
        guard judge.configuration.classes == c.scoreHeads, judge.configuration.side == c.imageSize else {
            throw .invalidModel(name: name, reason: "its \(c.scoreHeads) targets of \(c.imageSize) px do not match the classifier's "
                                + "\(judge.configuration.classes) classes of \(judge.configuration.side) px")
        }
        // Further instances are copies of the verified tensors.
        var pairs = [(network: loaded.network, classifier: judge)]
        do {
            for _ in 1..<instances {
                let network = try JigsawNetwork(configuration: c)
                try network.load(loaded.network.namedTensors())
                var generator = SeededGenerator(seed: 0)
                let classifier = DigitClassifier(judge.configuration, generator: &generator)
                try classifier.load(judge.namedTensors())
                pairs.append((network, classifier))
            }
        } catch {
            throw .invalidModel(name: name, reason: String(describing: error))
        }
        for pair in pairs {
            pair.network.threadCount = 1
            pair.network.isTraining = false
            pair.classifier.threadCount = 1
        }
        self.name = name
        configuration = c
        metadata = loaded.metadata
        self.classifierMetadata = classifierMetadata
        pool = Locked(pairs)
        available = DispatchSemaphore(value: instances)
    }

    /// What the classifier makes of one image.
    public struct Verdict: Sendable, Equatable {
        /// The most likely class.
        public var digit: Int
        /// The softmax over the classes.
        public var probabilities: [Float]
    }

    /// One assembly.
    public struct Assembly: Sendable {
        /// `cells[i]`: the cell piece `i` is put in.
        public var cells: [Int]
        /// The source as the network sees it (its pieces in their own cells), `[1, C, H, W]` in [0, 1].
        public var source: Tensor
        /// The hard assembly, same shape.
        public var assembled: Tensor
        /// The soft assembly `S(X/τ)` when a τ was asked for.
        public var soft: Tensor?
        public var sourceVerdict: Verdict
        public var verdict: Verdict
        public var softVerdict: Verdict?
    }

    /// Arranges `pieces` (`[1, n, 1, p, p]` in [0, 1], in cell order of their source) into `target`.
    /// - Throws: `numerical_failure` when the network's scores are unusable.
    public func assemble(pieces: Tensor, target: Int, temperature: Float?, iterations: Int) throws(ServiceError) -> Assembly {
        precondition((0..<configuration.scoreHeads).contains(target), "target out of range")
        available.wait()
        defer { available.signal() }
        let pair = pool.update { $0.removeLast() }
        defer { pool.update { $0.append(pair) } }
        let c = configuration
        do {
            let scores = JigsawInference.scores(pair.network, pieces: pieces, heads: [target])
            guard scores.storage.allSatisfy(\.isFinite) else {
                throw ServiceError.numericalFailure("the assembly network produced non-finite scores")
            }
            let cells = try JigsawInference.match(scores)[0]
            let identity = [Array(0..<c.pieceCount)]
            let source = DigitAssembly.framed(pieces, arrangements: identity, configuration: c)
            let assembled = DigitAssembly.framed(pieces, arrangements: [cells], configuration: c)
            var soft: Tensor?
            if let temperature {
                let matrix = try JigsawInference.soften(scores, temperature: temperature, iterations: iterations).matrix
                soft = DigitAssembly.framed(pieces, matrices: matrix, configuration: c)
            }
            let images = soft.map { [source, assembled, $0] } ?? [source, assembled]
            let verdicts = Self.verdicts(pair.classifier.probabilities(Self.stack(images)), classes: c.scoreHeads)
            return Assembly(cells: cells, source: source, assembled: assembled, soft: soft, sourceVerdict: verdicts[0],
                            verdict: verdicts[1], softVerdict: soft == nil ? nil : verdicts[2])
        } catch let error as ServiceError {
            throw error
        } catch {
            throw ServiceError.wrapping(error)
        }
    }

    static func stack(_ images: [Tensor]) -> Tensor {
        let shape = images[0].shape
        return Tensor(shape: [images.count] + shape.dropFirst(), storage: images.flatMap(\.storage))
    }

    static func verdicts(_ probabilities: Tensor, classes: Int) -> [Verdict] {
        let values = probabilities.storage
        return (0..<(values.count / classes)).map { row in
            let p = Array(values[(row * classes)..<((row + 1) * classes)])
            let digit = p.indices.max { p[$0] < p[$1] } ?? 0
            return Verdict(digit: digit, probabilities: p)
        }
    }
}
