import NeuralNet
import Permutations
import TensorKit

/// A uniform test distribution `U(low, high)` of Mena et al. 2018, Table 1.
public struct SortingTestDistribution: Sendable, Equatable, CustomStringConvertible {
    public var low: Double
    public var high: Double

    public init(low: Double, high: Double) {
        self.low = low
        self.high = high
    }

    /// The seven rows of Table 1, in order.
    public static let table1: [SortingTestDistribution] = [
        .init(low: 0, high: 1), .init(low: 0, high: 10), .init(low: 0, high: 1000), .init(low: 1, high: 2),
        .init(low: 10, high: 11), .init(low: 100, high: 101), .init(low: 1000, high: 1001),
    ]

    /// `U(0,1)`, `U(1000,1001)`, …
    public var description: String {
        func format(_ value: Double) -> String {
            value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
        }
        return "U(\(format(low)),\(format(high)))"
    }

    /// `count` numbers drawn in Double (53 random bits) and rounded to Float.
    public func sample(count: Int, generator: inout SeededGenerator) -> [Float] {
        (0..<count).map { _ in Float(low + (high - low) * generator.nextUniformDouble()) }
    }
}

/// The Table 1 figures of one network on one distribution.
public struct SortingEvaluationResult: Sendable, Equatable {
    public var distribution: SortingTestDistribution
    /// Lists evaluated.
    public var lists: Int
    /// Mean fraction of numbers put in the wrong slot (P.W.).
    public var proportionWrong: Double
    /// Fraction of lists with at least one wrong slot (P.A.W.).
    public var proportionAnyWrong: Double
    /// Mean Kendall tau-b between the true and the predicted slots.
    public var kendallTau: Double
    /// Lists that held equal numbers (after rounding to Float); see ``SortingEvaluation/truth(of:prediction:)``.
    public var listsWithTies: Int
}

/// Evaluation of a sorting network with the hard matching, as in Mena et al. 2018, §4.1.
public enum SortingEvaluation {
    /// The true slots of a list's numbers, `truth[i] = j` when `x[i]` is the `j`-th smallest.
    ///
    /// Equal numbers may go to their slots in either order (the sorted list is the same), so within
    /// a group of equal numbers the predicted slots are taken as true where they fall inside the
    /// group's slots; the rest of the group fills the remaining slots in index order. Without ties
    /// this is the ordinary ranking.
    ///
    /// - Parameters:
    ///   - list: the numbers.
    ///   - prediction: the predicted slots (same length), or nil for the index-order ranking.
    public static func truth(of list: [Float], prediction: [Int]? = nil) -> [Int] {
        let n = list.count
        let order = (0..<n).sorted { list[$0] < list[$1] || (list[$0] == list[$1] && $0 < $1) }
        var truth = [Int](repeating: 0, count: n)
        var start = 0
        while start < n {
            var end = start + 1
            while end < n && list[order[end]] == list[order[start]] { end += 1 }
            if end - start == 1 || prediction == nil {
                for slot in start..<end { truth[order[slot]] = slot }
            } else if let prediction {
                var taken = Set<Int>()
                var unassigned: [Int] = []
                for slot in start..<end {
                    let item = order[slot]
                    let predicted = prediction[item]
                    if (start..<end).contains(predicted) && !taken.contains(predicted) {
                        truth[item] = predicted
                        taken.insert(predicted)
                    } else {
                        unassigned.append(item)
                    }
                }
                var free = (start..<end).filter { !taken.contains($0) }.makeIterator()
                for item in unassigned { truth[item] = free.next() ?? start }
            }
            start = end
        }
        return truth
    }

    /// P.W., P.A.W. and Kendall tau of `network` on `lists` lists of `U(low, high)`, predicting each
    /// list's order by the hard matching `M(X)` of its scores (no noise).
    ///
    /// - Parameters:
    ///   - network: the network (its `count` is the list length).
    ///   - distribution: where the numbers come from.
    ///   - lists: how many lists.
    ///   - seed: the seed of the lists.
    ///   - batchSize: lists per network call.
    /// - Throws: `AssignmentError` if the scores are not finite.
    public static func evaluate(_ network: SortingNetwork, on distribution: SortingTestDistribution, lists: Int,
                                seed: UInt64, batchSize: Int = 100) throws -> SortingEvaluationResult {
        precondition(lists >= 1 && batchSize >= 1, "evaluate needs lists and a batch size")
        let n = network.configuration.count
        var generator = SeededGenerator(seed: seed)
        var metrics = PermutationMetricsAccumulator()
        var ties = 0
        var done = 0
        while done < lists {
            let batch = Swift.min(batchSize, lists - done)
            var values: [[Float]] = []
            values.reserveCapacity(batch)
            for _ in 0..<batch { values.append(distribution.sample(count: n, generator: &generator)) }
            let scores = network.forward(Tensor(shape: [batch, n], storage: values.flatMap { $0 }))
            let predictions = try LinearAssignment.matchings(scores: scores)
            for (list, prediction) in zip(values, predictions) {
                if Set(list).count < n { ties += 1 }
                try metrics.add(truth: truth(of: list, prediction: prediction), prediction: prediction)
            }
            done += batch
        }
        return SortingEvaluationResult(distribution: distribution, lists: lists,
                                       proportionWrong: metrics.meanProportionWrong,
                                       proportionAnyWrong: metrics.proportionAnyWrong,
                                       kendallTau: metrics.meanKendallTau, listsWithTies: ties)
    }
}

extension SortingNetwork {
    /// Puts the output slots in the order of the numbers the network actually sends to them: a
    /// discrete polishing step after gradient training.
    ///
    /// Training can end in a local minimum where two output units are swapped (slot `j` receives
    /// the `(j+1)`-th smallest number and slot `j+1` the `j`-th, on every list). The loss would drop
    /// by exchanging them, but the gradient towards that exchange is tiny (`≈ 2/N³` of the loss per
    /// pair), so Adam does not find it. This step runs the hard matching on `lists` fresh `U(0, 1)`
    /// lists (the training distribution), computes for each slot the mean true rank of the numbers
    /// matched to it, and permutes the rows of `fc2` (weights and bias) so that those mean ranks
    /// increase. It changes nothing when the slots are already in order.
    ///
    /// - Parameters:
    ///   - lists: validation lists to average over.
    ///   - seed: the seed of those lists (use one distinct from the test seeds).
    /// - Returns: `order`, with new slot `k` taking old slot `order[k]` (the identity if nothing moved).
    /// - Throws: `AssignmentError` if the scores are not finite.
    @discardableResult
    public func reorderOutputSlots(lists: Int, seed: UInt64, batchSize: Int = 100) throws -> [Int] {
        precondition(lists >= 1 && batchSize >= 1, "reorderOutputSlots needs lists and a batch size")
        let n = configuration.count
        var generator = SeededGenerator(seed: seed)
        var rankSums = [Double](repeating: 0, count: n)
        var done = 0
        let distribution = SortingTestDistribution(low: 0, high: 1)
        while done < lists {
            let batch = Swift.min(batchSize, lists - done)
            var values: [Float] = []
            values.reserveCapacity(batch * n)
            for _ in 0..<batch { values += distribution.sample(count: n, generator: &generator) }
            let predictions = try LinearAssignment.matchings(scores: forward(Tensor(shape: [batch, n], storage: values)))
            for (index, prediction) in predictions.enumerated() {
                let truth = SortingEvaluation.truth(of: Array(values[(index * n)..<((index + 1) * n)]))
                for item in 0..<n { rankSums[prediction[item]] += Double(truth[item]) }
            }
            done += batch
        }
        let order = (0..<n).sorted { rankSums[$0] < rankSums[$1] || (rankSums[$0] == rankSums[$1] && $0 < $1) }
        guard order != Array(0..<n) else { return order }
        let hidden = configuration.hiddenUnits
        let weight = secondLayer.weight.value, bias = secondLayer.bias?.value
        var newWeight = weight
        var newBias = bias
        for (slot, old) in order.enumerated() {
            for k in 0..<hidden { newWeight.storage[slot * hidden + k] = weight.storage[old * hidden + k] }
            if let bias { newBias?.storage[slot] = bias.storage[old] }
        }
        secondLayer.weight.value = newWeight
        if let newBias { secondLayer.bias?.value = newBias }
        return order
    }
}
