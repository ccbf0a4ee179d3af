import Foundation
import NeuralNet
import Permutations
import TensorKit

/// The PAPERS.md §4 metrics of a jigsaw network on a set of puzzles.
public struct JigsawEvaluation: Equatable, Sendable {
    public var puzzles: Int
    /// Mean Kendall tau-b between the true and the predicted permutation lists.
    public var kendallTau: Double
    /// Mean fraction of pieces placed in the wrong cell.
    public var propWrong: Double
    /// Fraction of puzzles with at least one wrong piece.
    public var propAnyWrong: Double
    /// Mean absolute / squared pixel difference (pixels in [0, 1]) between the hard reconstruction and the image.
    public var l1: Double
    public var l2: Double
    /// Puzzles whose Kendall tau is undefined (left out of its mean, as `np.nanmean` would).
    public var undefinedKendallTau: Int

    /// The figures as `eval.*` metadata entries.
    public func metadata(dataset: String, split: String) -> [String: String] {
        [
            "eval.dataset": dataset, "eval.split": split, "eval.puzzles": "\(puzzles)",
            "eval.kendall_tau": String(format: "%.5f", kendallTau), "eval.prop_wrong": String(format: "%.5f", propWrong),
            "eval.prop_any_wrong": String(format: "%.5f", propAnyWrong), "eval.l1": String(format: "%.5f", l1),
            "eval.l2": String(format: "%.5f", l2),
        ]
    }

    /// One JSON object with the fixed keys `kendall_tau`, `prop_wrong`, `prop_any_wrong`, `l1`, `l2`, `puzzles`.
    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(self) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}

extension JigsawEvaluation: Encodable {
    enum CodingKeys: String, CodingKey {
        case puzzles, kendallTau = "kendall_tau", propWrong = "prop_wrong", propAnyWrong = "prop_any_wrong", l1, l2
        case undefinedKendallTau = "undefined_kendall_tau"
    }

    /// The figures to six decimals; one that is not finite (no defined Kendall tau) is `null`.
    public func encode(to encoder: Encoder) throws {
        func figure(_ x: Double) -> Double? { x.isFinite ? (x * 1e6).rounded() / 1e6 : nil }
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(puzzles, forKey: .puzzles)
        try container.encode(figure(kendallTau), forKey: .kendallTau)
        try container.encode(figure(propWrong), forKey: .propWrong)
        try container.encode(figure(propAnyWrong), forKey: .propAnyWrong)
        try container.encode(figure(l1), forKey: .l1)
        try container.encode(figure(l2), forKey: .l2)
        try container.encode(undefinedKendallTau, forKey: .undefinedKendallTau)
    }
}

public enum JigsawEvaluator {
    /// Scrambles the first `limit` images (all when nil) with permutations drawn from `seed`, solves
    /// them with the network's scores and the hard matching `M(X)` (Hungarian / Jonker–Volgenant, as
    /// the tutorial evaluates), and measures the result.
    ///
    /// The network is put in evaluation mode for the call and restored afterwards.
    /// - Throws: `JigsawTrainingError.datasetMismatch` when the images do not fit the network.
    public static func evaluate(network: JigsawNetwork, dataset: ImageDataset, limit: Int? = nil, seed: UInt64 = 0,
                                batchSize: Int = 256) throws -> JigsawEvaluation {
        let c = network.configuration
        guard dataset.channels == c.channels, dataset.height == c.imageSize, dataset.width == c.imageSize else {
            throw JigsawTrainingError.datasetMismatch(
                "images are \(dataset.channels)×\(dataset.height)×\(dataset.width), the network expects "
                + "\(c.channels)×\(c.imageSize)×\(c.imageSize)")
        }
        let total = min(limit ?? dataset.count, dataset.count)
        let wasTraining = network.isTraining
        network.isTraining = false
        defer { network.isTraining = wasTraining }
        var generator = SeededGenerator(seed: seed)
        var batch = PuzzleBatch(batchSize: min(batchSize, max(total, 1)), grid: c.grid, channels: c.channels,
                                height: c.imageSize, width: c.imageSize)
        var accumulator = PermutationMetricsAccumulator()
        let n = c.pieceCount
        let d = c.channels * c.pieceSize * c.pieceSize
        var reconstruction = [Float](repeating: 0, count: n * d)
        var target = [Float](repeating: 0, count: n * d)
        var start = 0
        while start < total {
            let end = min(start + batchSize, total)
            // Pixels in [0, 1]: the matching does not depend on the scale, and l1/l2 are reported on pixels.
            batch.fill(from: dataset, indices: start..<end, generator: &generator, normalization: nil)
            let scores = JigsawInference.scores(network, pieces: batch.scrambled)
            let matchings = try JigsawInference.match(scores)
            try batch.scrambled.withUnsafeBufferPointer { x in
                try batch.unscrambled.withUnsafeBufferPointer { t in
                    for b in 0..<batch.count {
                        for (i, j) in matchings[b].enumerated() {
                            for k in 0..<d { reconstruction[j * d + k] = x[(b * n + i) * d + k] }
                        }
                        for k in 0..<(n * d) { target[k] = t[b * n * d + k] }
                        try accumulator.add(truth: batch.permutation(b), prediction: matchings[b])
                        try accumulator.add(reconstruction: reconstruction, target: target)
                    }
                }
            }
            start = end
        }
        return JigsawEvaluation(puzzles: accumulator.puzzles, kendallTau: accumulator.meanKendallTau,
                                propWrong: accumulator.meanProportionWrong, propAnyWrong: accumulator.proportionAnyWrong,
                                l1: accumulator.meanL1, l2: accumulator.meanL2,
                                undefinedKendallTau: accumulator.undefinedKendallTauCount)
    }
}
