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
    /// The same three metrics on equal terms (``EqualTerms``): a piece counts as right when its
    /// pixels equal those of the piece that belongs in its cell.
    public var equalTermsKendallTau: Double
    public var equalTermsPropWrong: Double
    public var equalTermsPropAnyWrong: Double

    public init(puzzles: Int, kendallTau: Double, propWrong: Double, propAnyWrong: Double, l1: Double, l2: Double,
                undefinedKendallTau: Int, equalTermsKendallTau: Double? = nil, equalTermsPropWrong: Double? = nil,
                equalTermsPropAnyWrong: Double? = nil) {
        self.puzzles = puzzles
        self.kendallTau = kendallTau
        self.propWrong = propWrong
        self.propAnyWrong = propAnyWrong
        self.l1 = l1
        self.l2 = l2
        self.undefinedKendallTau = undefinedKendallTau
        self.equalTermsKendallTau = equalTermsKendallTau ?? kendallTau
        self.equalTermsPropWrong = equalTermsPropWrong ?? propWrong
        self.equalTermsPropAnyWrong = equalTermsPropAnyWrong ?? propAnyWrong
    }

    /// The figures as `eval.*` metadata entries.
    public func metadata(dataset: String, split: String) -> [String: String] {
        [
            "eval.dataset": dataset, "eval.split": split, "eval.puzzles": "\(puzzles)",
            "eval.kendall_tau": String(format: "%.5f", kendallTau), "eval.prop_wrong": String(format: "%.5f", propWrong),
            "eval.prop_any_wrong": String(format: "%.5f", propAnyWrong), "eval.l1": String(format: "%.5f", l1),
            "eval.l2": String(format: "%.5f", l2),
            "eval.equal_terms_kendall_tau": String(format: "%.5f", equalTermsKendallTau),
            "eval.equal_terms_prop_wrong": String(format: "%.5f", equalTermsPropWrong),
            "eval.equal_terms_prop_any_wrong": String(format: "%.5f", equalTermsPropAnyWrong),
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
        case equalTermsKendallTau = "equal_terms_kendall_tau", equalTermsPropWrong = "equal_terms_prop_wrong"
        case equalTermsPropAnyWrong = "equal_terms_prop_any_wrong"
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
        try container.encode(figure(equalTermsKendallTau), forKey: .equalTermsKendallTau)
        try container.encode(figure(equalTermsPropWrong), forKey: .equalTermsPropWrong)
        try container.encode(figure(equalTermsPropAnyWrong), forKey: .equalTermsPropAnyWrong)
    }
}

public enum JigsawEvaluator {
    /// Scrambles the first `limit` images (all when nil) with permutations drawn from `seed`, solves
    /// them with the network's scores and the hard matching `M(X)` (Hungarian / Jonker–Volgenant, as
    /// the tutorial evaluates), and measures the result.
    ///
    /// The network is put in evaluation mode for the call and restored afterwards. A network with
    /// several score heads scores every image with the head of its label (the reconstruction of a
    /// digit into its own class).
    /// - Throws: `JigsawTrainingError.datasetMismatch` when the images do not fit the network, or
    ///   a network with several heads meets images without labels.
    ///
    /// With `jpegQuality`, every scrambled puzzle is first re-encoded as a JPEG of that quality
    /// (``PuzzleBatch/recompressScrambled(puzzle:quality:normalization:)``), as a phone would save it.
    public static func evaluate(network: JigsawNetwork, dataset: ImageDataset, limit: Int? = nil, seed: UInt64 = 0,
                                batchSize: Int = 256, jpegQuality: Int? = nil) throws -> JigsawEvaluation {
        let c = network.configuration
        try dataset.checkFits(c)
        let total = min(limit ?? dataset.count, dataset.count)
        let labels = dataset.labels
        if c.scoreHeads > 1 { try dataset.checkLabels(classes: c.scoreHeads) }
        let wasTraining = network.isTraining
        network.isTraining = false
        defer { network.isTraining = wasTraining }
        var generator = SeededGenerator(seed: seed)
        var batch = PuzzleBatch(batchSize: min(batchSize, max(total, 1)), grid: c.grid, channels: c.channels,
                                height: c.imageSize, width: c.imageSize)
        var accumulator = PermutationMetricsAccumulator(), equalTerms = PermutationMetricsAccumulator()
        let n = c.pieceCount
        let d = c.channels * c.pieceSize * c.pieceSize
        var reconstruction = [Float](repeating: 0, count: n * d)
        var target = [Float](repeating: 0, count: n * d)
        var start = 0
        while start < total {
            let end = min(start + batchSize, total)
            // Pixels in [0, 1]: the matching does not depend on the scale, and l1/l2 are reported on pixels.
            batch.fill(from: dataset, indices: start..<end, generator: &generator, normalization: nil)
            if let jpegQuality {
                for b in 0..<batch.count { try batch.recompressScrambled(puzzle: b, quality: jpegQuality, normalization: nil) }
            }
            let heads = c.scoreHeads > 1 ? Array(labels![start..<end]) : nil
            let scores = JigsawInference.scores(network, pieces: batch.scrambled, heads: heads)
            let matchings = try JigsawInference.match(scores)
            try batch.scrambled.withUnsafeBufferPointer { x in
                try batch.unscrambled.withUnsafeBufferPointer { t in
                    for b in 0..<batch.count {
                        for (i, j) in matchings[b].enumerated() {
                            for k in 0..<d { reconstruction[j * d + k] = x[(b * n + i) * d + k] }
                        }
                        for k in 0..<(n * d) { target[k] = t[b * n * d + k] }
                        let truth = batch.permutation(b)
                        try accumulator.add(truth: truth, prediction: matchings[b])
                        let relabelled = EqualTerms.prediction(
                            truth: truth, prediction: matchings[b],
                            pieces: UnsafeBufferPointer(rebasing: x[(b * n * d)..<((b + 1) * n * d)]), pieceLength: d)
                        try equalTerms.add(truth: truth, prediction: relabelled)
                        try accumulator.add(reconstruction: reconstruction, target: target)
                    }
                }
            }
            start = end
        }
        return JigsawEvaluation(puzzles: accumulator.puzzles, kendallTau: accumulator.meanKendallTau,
                                propWrong: accumulator.meanProportionWrong, propAnyWrong: accumulator.proportionAnyWrong,
                                l1: accumulator.meanL1, l2: accumulator.meanL2,
                                undefinedKendallTau: accumulator.undefinedKendallTauCount,
                                equalTermsKendallTau: equalTerms.meanKendallTau, equalTermsPropWrong: equalTerms.meanProportionWrong,
                                equalTermsPropAnyWrong: equalTerms.proportionAnyWrong)
    }
}
