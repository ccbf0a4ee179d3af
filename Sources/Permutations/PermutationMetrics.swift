import TensorKit

/// The evaluation metrics of Mena et al. 2018 (§4; PAPERS.md §4), computed as the original
/// evaluation code computes them, per puzzle or list; `PermutationMetricsAccumulator` averages them.
///
/// `truth` and `prediction` are permutation lists (`permutation[i] = j`: item `i` goes to slot `j`).
/// The metrics only require equal lengths, not valid permutations, like the numpy code they follow.
public enum PermutationMetrics {
    /// Kendall's tau-b rank correlation between two sequences (scipy.stats.kendalltau's default).
    ///
    ///     τ_b = (n_c − n_d) / √((n₀ − n_x)(n₀ − n_y)),   n₀ = n(n − 1)/2,
    ///
    /// with `n_c`, `n_d` the concordant and discordant pairs, `n_x` (`n_y`) the pairs tied in `x` (`y`);
    /// a pair tied in both counts in neither `n_c` nor `n_d`. Computed like scipy (Knight 1966): sort
    /// by `(x, y)`, count tie runs, then count discordant pairs as the swaps of a merge sort on `y`.
    ///
    /// - Returns: τ_b in `[−1, 1]`; NaN when `n < 2`, when either side is constant (every pair tied,
    ///   the denominator is 0), or when either contains NaN — scipy's results in those cases.
    /// - Throws: `PermutationError.lengthMismatch` if the lengths differ.
    /// - Complexity: O(n log n) time, O(n) scratch.
    public static func kendallTau(_ x: [Double], _ y: [Double]) throws -> Double {
        guard x.count == y.count else { throw PermutationError.lengthMismatch(expected: x.count, found: y.count) }
        if x.contains(where: \.isNaN) || y.contains(where: \.isNaN) { return .nan }
        return tauB(x, y)
    }

    /// Kendall's tau-b between a true and a predicted permutation list (see `kendallTau(_:_:)`).
    ///
    /// For two permutations of `n ≥ 2` items there are no ties and τ_b = 1 − 4·(discordant pairs)/(n(n − 1)).
    /// - Throws: `PermutationError.lengthMismatch` if the lengths differ.
    public static func kendallTau(truth: [Int], prediction: [Int]) throws -> Double {
        guard truth.count == prediction.count else {
            throw PermutationError.lengthMismatch(expected: truth.count, found: prediction.count)
        }
        return tauB(truth, prediction)
    }

    /// The fraction of items whose predicted slot differs from the true one: `mean_i [pred_i ≠ truth_i]`.
    ///
    /// - Returns: a value in `[0, 1]`; NaN for empty lists (a mean over no items).
    /// - Throws: `PermutationError.lengthMismatch` if the lengths differ.
    public static func proportionWrong(truth: [Int], prediction: [Int]) throws -> Double {
        guard truth.count == prediction.count else {
            throw PermutationError.lengthMismatch(expected: truth.count, found: prediction.count)
        }
        if truth.isEmpty { return .nan }
        var wrong = 0
        for (t, p) in zip(truth, prediction) where t != p { wrong += 1 }
        return Double(wrong) / Double(truth.count)
    }

    /// 1 if any item of the puzzle is in the wrong slot, else 0 (averaged over puzzles this is
    /// "prop. any wrong"). Empty lists have no wrong item: 0.
    ///
    /// - Throws: `PermutationError.lengthMismatch` if the lengths differ.
    public static func anyWrong(truth: [Int], prediction: [Int]) throws -> Double {
        guard truth.count == prediction.count else {
            throw PermutationError.lengthMismatch(expected: truth.count, found: prediction.count)
        }
        return truth == prediction ? 0 : 1
    }

    /// The mean absolute difference `mean_k |a_k − b_k|`, summed in Double.
    ///
    /// - Returns: NaN for empty arrays (a mean over nothing).
    /// - Throws: `PermutationError.lengthMismatch` if the counts differ.
    public static func l1(_ a: [Float], _ b: [Float]) throws -> Double {
        let (sum, count) = try differenceSums(a, b)
        return count == 0 ? .nan : sum.absolute / Double(count)
    }

    /// The mean squared difference `mean_k (a_k − b_k)²`, summed in Double.
    ///
    /// - Returns: NaN for empty arrays.
    /// - Throws: `PermutationError.lengthMismatch` if the counts differ.
    public static func l2(_ a: [Float], _ b: [Float]) throws -> Double {
        let (sum, count) = try differenceSums(a, b)
        return count == 0 ? .nan : sum.squared / Double(count)
    }

    /// `(Σ|a − b|, Σ(a − b)²)` in Double and the element count.
    static func differenceSums(_ a: [Float], _ b: [Float]) throws -> (sums: (absolute: Double, squared: Double), count: Int) {
        guard a.count == b.count else { throw PermutationError.lengthMismatch(expected: a.count, found: b.count) }
        var absolute = 0.0, squared = 0.0
        a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in
                for k in 0..<a.count {
                    let difference = Double(a[k]) - Double(b[k])
                    absolute += Swift.abs(difference)
                    squared += difference * difference
                }
            }
        }
        return ((absolute, squared), a.count)
    }

    // MARK: - Tau-b

    private static func tauB<T: Comparable>(_ x: [T], _ y: [T]) -> Double {
        let n = x.count
        if n < 2 { return .nan }
        // Order by x, then y; runs of equal x give the x ties, runs of equal (x, y) the joint ties.
        var order = Array(0..<n)
        order.sort { x[$0] < x[$1] || (x[$0] == x[$1] && y[$0] < y[$1]) }
        var xTies = 0, jointTies = 0
        var xRun = 1, jointRun = 1
        for k in 1...n {
            let sameX = k < n && x[order[k]] == x[order[k - 1]]
            let sameBoth = sameX && y[order[k]] == y[order[k - 1]]
            if sameBoth { jointRun += 1 } else { jointTies += jointRun * (jointRun - 1) / 2; jointRun = 1 }
            if sameX { xRun += 1 } else { xTies += xRun * (xRun - 1) / 2; xRun = 1 }
        }
        // Discordant pairs are the inversions of y in this order (pairs tied in x are already
        // ordered by y, so they contribute none), counted while merge-sorting y.
        var values = order.map { y[$0] }
        var scratch = values
        let discordant = mergeSortCountingInversions(&values, &scratch)
        var yTies = 0, yRun = 1
        for k in 1...n {
            if k < n && values[k] == values[k - 1] { yRun += 1 } else { yTies += yRun * (yRun - 1) / 2; yRun = 1 }
        }
        let pairs = n * (n - 1) / 2
        if xTies == pairs || yTies == pairs { return .nan }
        let concordantMinusDiscordant = Double(pairs - xTies - yTies + jointTies - 2 * discordant)
        let tau = concordantMinusDiscordant / (Double(pairs - xTies).squareRoot() * Double(pairs - yTies).squareRoot())
        return Swift.min(1, Swift.max(-1, tau))
    }

    /// Sorts `values` ascending (bottom-up, stable) and returns the number of pairs `a < b` with
    /// `values[a] > values[b]` before sorting.
    private static func mergeSortCountingInversions<T: Comparable>(_ values: inout [T], _ scratch: inout [T]) -> Int {
        let n = values.count
        var inversions = 0
        var width = 1
        while width < n {
            var start = 0
            while start < n {
                let middle = Swift.min(start + width, n), end = Swift.min(start + 2 * width, n)
                var left = start, right = middle, out = start
                while left < middle && right < end {
                    if values[right] < values[left] {
                        scratch[out] = values[right]
                        inversions += middle - left
                        right += 1
                    } else {
                        scratch[out] = values[left]
                        left += 1
                    }
                    out += 1
                }
                while left < middle { scratch[out] = values[left]; left += 1; out += 1 }
                while right < end { scratch[out] = values[right]; right += 1; out += 1 }
                start = end
            }
            swap(&values, &scratch)
            width *= 2
        }
        return inversions
    }
}

/// Accumulates the PAPERS.md §4 metrics over many puzzles (or sorted lists) and reports means.
///
/// - Kendall tau: the mean of the per-puzzle τ_b over puzzles where it is defined. A puzzle whose τ_b
///   is NaN (fewer than 2 items, or a constant side) is left out of that mean and counted in
///   `undefinedKendallTauCount` — numpy's `nanmean`, where a plain `np.mean` would turn the whole
///   average into NaN. With no defined τ_b at all the mean is NaN.
/// - prop. wrong: the mean over puzzles of the per-puzzle fraction of wrong items (a puzzle with no
///   items is left out, like an undefined τ_b).
/// - prop. any wrong: the fraction of puzzles with at least one wrong item.
/// - l1 / l2: the mean absolute / squared difference over every element of every reconstruction
///   added (for equally sized puzzles, the mean of the per-puzzle means).
/// Each mean is NaN until something has been added to it.
public struct PermutationMetricsAccumulator: Sendable, Equatable {
    /// Puzzles added with `add(truth:prediction:)`.
    public private(set) var puzzles = 0
    /// Puzzles whose τ_b was NaN and is left out of `meanKendallTau`.
    public private(set) var undefinedKendallTauCount = 0
    private var kendallTauSum = 0.0
    private var definedKendallTauCount = 0
    private var proportionWrongSum = 0.0
    private var nonEmptyPuzzles = 0
    private var anyWrongSum = 0.0
    private var absoluteDifferenceSum = 0.0
    private var squaredDifferenceSum = 0.0
    private var elements = 0

    public init() {}

    /// Adds one puzzle's true and predicted permutations.
    ///
    /// - Throws: `PermutationError.lengthMismatch` (the accumulator is then unchanged).
    public mutating func add(truth: [Int], prediction: [Int]) throws {
        let tau = try PermutationMetrics.kendallTau(truth: truth, prediction: prediction)
        let wrong = try PermutationMetrics.proportionWrong(truth: truth, prediction: prediction)
        puzzles += 1
        if tau.isNaN { undefinedKendallTauCount += 1 } else { kendallTauSum += tau; definedKendallTauCount += 1 }
        if !wrong.isNaN { proportionWrongSum += wrong; nonEmptyPuzzles += 1 }
        anyWrongSum += try PermutationMetrics.anyWrong(truth: truth, prediction: prediction)
    }

    /// Adds one reconstruction and its ground truth (flattened, equal counts) to the l1 / l2 means.
    ///
    /// - Throws: `PermutationError.lengthMismatch` (the accumulator is then unchanged).
    public mutating func add(reconstruction: [Float], target: [Float]) throws {
        let (sums, count) = try PermutationMetrics.differenceSums(reconstruction, target)
        absoluteDifferenceSum += sums.absolute
        squaredDifferenceSum += sums.squared
        elements += count
    }

    /// Adds the counts of another accumulator (for example one per worker).
    public mutating func merge(_ other: PermutationMetricsAccumulator) {
        puzzles += other.puzzles
        undefinedKendallTauCount += other.undefinedKendallTauCount
        kendallTauSum += other.kendallTauSum
        definedKendallTauCount += other.definedKendallTauCount
        proportionWrongSum += other.proportionWrongSum
        nonEmptyPuzzles += other.nonEmptyPuzzles
        anyWrongSum += other.anyWrongSum
        absoluteDifferenceSum += other.absoluteDifferenceSum
        squaredDifferenceSum += other.squaredDifferenceSum
        elements += other.elements
    }

    /// The mean τ_b over puzzles where it is defined.
    public var meanKendallTau: Double { mean(kendallTauSum, definedKendallTauCount) }
    /// The mean fraction of wrong items per puzzle.
    public var meanProportionWrong: Double { mean(proportionWrongSum, nonEmptyPuzzles) }
    /// The fraction of puzzles with at least one wrong item.
    public var proportionAnyWrong: Double { mean(anyWrongSum, puzzles) }
    /// The mean absolute difference over all reconstruction elements.
    public var meanL1: Double { mean(absoluteDifferenceSum, elements) }
    /// The mean squared difference over all reconstruction elements.
    public var meanL2: Double { mean(squaredDifferenceSum, elements) }

    private func mean(_ sum: Double, _ count: Int) -> Double { count == 0 ? .nan : sum / Double(count) }
}
