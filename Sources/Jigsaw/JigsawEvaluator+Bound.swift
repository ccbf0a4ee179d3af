import NeuralNet
import Permutations
import TensorKit

extension JigsawEvaluator {
    /// The best figures any solver can expect when identical pieces cannot be told apart.
    ///
    /// Pieces of one puzzle whose pixels are exactly equal (typically blank background) give the same
    /// reconstruction in any order, so a loss on the reconstruction — and any solver that sees only
    /// pixels — cannot prefer one order. The oracle here places every piece correctly except that it
    /// orders each group of `k` identical pieces uniformly at random: it expects `Σ (k − 1)` wrong
    /// pieces per puzzle (a random permutation of `k` items fixes one on average), all correct with
    /// probability `Π 1/k!`, and its Kendall tau is estimated from `draws` random orderings per puzzle.
    /// - Returns: the oracle's expected figures (`l1` and `l2` are 0: its reconstructions are exact).
    public static func indistinguishablePieceBound(dataset: ImageDataset, grid: Int, limit: Int? = nil,
                                                   seed: UInt64 = 0, draws: Int = 16) throws -> JigsawEvaluation {
        let total = min(limit ?? dataset.count, dataset.count)
        let n = grid * grid
        let ph = dataset.height / grid, pw = dataset.width / grid
        let top = (dataset.height - grid * ph) / 2, left = (dataset.width - grid * pw) / 2
        var generator = SeededGenerator(seed: seed)
        var wrongSum = 0.0, anyWrongSum = 0.0, tauSum = 0.0
        var tauCount = 0, undefined = 0
        var keys = [[UInt8]](repeating: [], count: n)
        for index in 0..<total {
            let base = index * dataset.imageSize
            for cell in 0..<n {
                var key: [UInt8] = []
                key.reserveCapacity(dataset.channels * ph * pw)
                let (r, c) = (cell / grid, cell % grid)
                for channel in 0..<dataset.channels {
                    for y in 0..<ph {
                        let row = base + (channel * dataset.height + top + r * ph + y) * dataset.width + left + c * pw
                        key.append(contentsOf: dataset.pixels[row..<(row + pw)])
                    }
                }
                keys[cell] = key
            }
            var groups: [[UInt8]: [Int]] = [:]
            for cell in 0..<n { groups[keys[cell], default: []].append(cell) }
            var allRightProbability = 1.0
            var expectedWrong = 0.0
            for members in groups.values where members.count > 1 {
                expectedWrong += Double(members.count - 1)
                for k in 1...members.count { allRightProbability /= Double(k) }
            }
            wrongSum += expectedWrong / Double(n)
            anyWrongSum += 1 - allRightProbability
            let truth = Array(0..<n)
            for _ in 0..<draws {
                var prediction = truth
                for members in groups.values where members.count > 1 {
                    let shuffled = generator.permutation(members.count).map { members[$0] }
                    for (cell, target) in zip(members, shuffled) { prediction[cell] = target }
                }
                let tau = try PermutationMetrics.kendallTau(truth: truth, prediction: prediction)
                if tau.isNaN { undefined += 1 } else { tauSum += tau; tauCount += 1 }
            }
        }
        let count = Double(max(total, 1))
        return JigsawEvaluation(puzzles: total, kendallTau: tauSum / Double(max(tauCount, 1)),
                                propWrong: wrongSum / count, propAnyWrong: anyWrongSum / count,
                                l1: 0, l2: 0, undefinedKendallTau: undefined / max(draws, 1),
                                equalTermsKendallTau: 1, equalTermsPropWrong: 0, equalTermsPropAnyWrong: 0)
    }
}
