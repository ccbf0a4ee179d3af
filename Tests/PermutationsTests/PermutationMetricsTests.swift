import Permutations
import TensorKit
import Testing

/// Tau-b straight from its definition, over all pairs: `(n_c − n_d) / √((n₀ − n_x)(n₀ − n_y))`.
private func tauBByPairs(_ x: [Double], _ y: [Double]) -> Double {
    var concordant = 0, discordant = 0, xTies = 0, yTies = 0
    let n = x.count
    for a in 0..<n {
        for b in (a + 1)..<max(n, a + 1) {
            let dx = x[a] - x[b], dy = y[a] - y[b]
            if dx == 0 { xTies += 1 }
            if dy == 0 { yTies += 1 }
            if dx != 0 && dy != 0 { if (dx > 0) == (dy > 0) { concordant += 1 } else { discordant += 1 } }
        }
    }
    let pairs = n * (n - 1) / 2
    return Double(concordant - discordant) / (Double(pairs - xTies) * Double(pairs - yTies)).squareRoot()
}

@Suite("PermutationMetrics")
struct PermutationMetricsTests {
    /// Rounding of one division and one square root.
    let tauTolerance = 1e-15

    @Test("Kendall tau-b on hand-computed cases with ties (values confirmed with scipy 1.17.1 kendalltau)")
    func kendallTauByHand() throws {
        // x = [1,1,2,2,3], y = [1,2,1,2,3]: n₀ = 10; x ties {01, 23}; y ties {02, 13}; no joint tie;
        // concordant {03, 04, 14, 24, 34}, discordant {12}: τ_b = (5 − 1)/√(8·8) = 0.5.
        #expect(abs(try PermutationMetrics.kendallTau([1, 1, 2, 2, 3], [1, 2, 1, 2, 3]) - 0.5) < tauTolerance)
        // No ties: [1..5] vs [3,4,1,2,5]: discordant {02, 03, 12, 13}: (6 − 4)/10 = 0.2.
        #expect(abs(try PermutationMetrics.kendallTau([1, 2, 3, 4, 5], [3, 4, 1, 2, 5]) - 0.2) < tauTolerance)
        // x = [1,2,2,3,3,3], y = [3,1,1,2,2,3]: n₀ = 15; x ties {12, 34, 35, 45} = 4; y ties {05, 12, 34} = 3
        // (12 and 34 tied in both count in neither n_c nor n_d); concordant {13, 14, 15, 23, 24, 25} = 6,
        // discordant {01, 02, 03, 04} = 4: τ_b = 2/√(11·12) = 0.17407765595569785 (scipy agrees).
        #expect(abs(try PermutationMetrics.kendallTau([1, 2, 2, 3, 3, 3], [3, 1, 1, 2, 2, 3])
                    - 2 / (11.0 * 12).squareRoot()) < tauTolerance)
        // scipy.stats.kendalltau([0.5,0.5,-1,2.5,2.5,7], [1,1,1,0,2,0]) = -0.3344968040028363.
        #expect(abs(try PermutationMetrics.kendallTau([0.5, 0.5, -1, 2.5, 2.5, 7], [1, 1, 1, 0, 2, 0])
                    - -0.3344968040028363) < tauTolerance)
        // Permutations: truth identity, prediction [2,0,1,5,3,4,8,6,7] has 6 inversions of 36 pairs:
        // 1 − 2·6/36 = 2/3 (scipy: 0.6666666666666666).
        #expect(abs(try PermutationMetrics.kendallTau(truth: Array(0..<9), prediction: [2, 0, 1, 5, 3, 4, 8, 6, 7])
                    - 2.0 / 3) < tauTolerance)
        #expect(try PermutationMetrics.kendallTau(truth: [0, 1, 2, 3], prediction: [3, 2, 1, 0]) == -1)
        #expect(try PermutationMetrics.kendallTau(truth: [2, 0, 1], prediction: [2, 0, 1]) == 1)
    }

    @Test("Kendall tau is NaN when undefined, and lengths must match")
    func kendallTauUndefined() throws {
        #expect(try PermutationMetrics.kendallTau([1, 1, 1], [1, 2, 3]).isNaN)      // scipy: nan
        #expect(try PermutationMetrics.kendallTau([1, 2, 3], [4, 4, 4]).isNaN)
        #expect(try PermutationMetrics.kendallTau([], []).isNaN)
        #expect(try PermutationMetrics.kendallTau(truth: [0], prediction: [0]).isNaN)
        #expect(try PermutationMetrics.kendallTau([1, .nan, 3], [1, 2, 3]).isNaN)
        #expect(throws: PermutationError.lengthMismatch(expected: 3, found: 2)) {
            try PermutationMetrics.kendallTau([1, 2, 3], [1, 2])
        }
        #expect(throws: PermutationError.lengthMismatch(expected: 2, found: 3)) {
            try PermutationMetrics.kendallTau(truth: [0, 1], prediction: [0, 1, 2])
        }
    }

    @Test("Kendall tau-b equals the all-pairs definition on random tie-heavy data")
    func kendallTauAgainstPairs() throws {
        for seed in UInt64(0)..<300 {
            var generator = SeededGenerator(seed: seed)
            let n = 2 + generator.nextInt(below: 60)
            let levels = 1 + generator.nextInt(below: 6)
            let x = (0..<n).map { _ in Double(generator.nextInt(below: levels)) }
            let y = (0..<n).map { _ in Double(generator.nextInt(below: 1 + generator.nextInt(below: 8))) }
            let reference = tauBByPairs(x, y)
            let tau = try PermutationMetrics.kendallTau(x, y)
            if reference.isNaN {
                #expect(tau.isNaN, "seed \(seed)")
            } else {
                // One extra rounding per count difference at most: well inside 1e-12.
                #expect(abs(tau - reference) < 1e-12, "seed \(seed): \(tau) vs \(reference)")
            }
        }
    }

    @Test("prop. wrong, any wrong, l1 and l2 on hand cases")
    func simpleMetrics() throws {
        #expect(try PermutationMetrics.proportionWrong(truth: [0, 1, 2, 3], prediction: [0, 2, 1, 3]) == 0.5)
        #expect(try PermutationMetrics.proportionWrong(truth: [2, 0, 1], prediction: [2, 0, 1]) == 0)
        #expect(try PermutationMetrics.proportionWrong(truth: [], prediction: []).isNaN)
        #expect(try PermutationMetrics.anyWrong(truth: [0, 1, 2, 3], prediction: [0, 2, 1, 3]) == 1)
        #expect(try PermutationMetrics.anyWrong(truth: [2, 0, 1], prediction: [2, 0, 1]) == 0)
        #expect(throws: PermutationError.lengthMismatch(expected: 2, found: 1)) {
            try PermutationMetrics.proportionWrong(truth: [0, 1], prediction: [0])
        }
        // |1−0| + |2−4| + |−1−(−1)| + |0.5−0| = 3.5 over 4; squares 1 + 4 + 0 + 0.25 = 5.25 over 4.
        #expect(try PermutationMetrics.l1([1, 2, -1, 0.5], [0, 4, -1, 0]) == 0.875)
        #expect(try PermutationMetrics.l2([1, 2, -1, 0.5], [0, 4, -1, 0]) == 1.3125)
        #expect(try PermutationMetrics.l1([], []).isNaN)
        #expect(throws: PermutationError.lengthMismatch(expected: 1, found: 2)) { try PermutationMetrics.l2([1], [1, 2]) }
    }

    @Test("the accumulator reports means, skips undefined tau, merges, and rejects mismatches unchanged")
    func accumulator() throws {
        var metrics = PermutationMetricsAccumulator()
        #expect(metrics.meanKendallTau.isNaN && metrics.proportionAnyWrong.isNaN && metrics.meanL1.isNaN)
        try metrics.add(truth: [0, 1, 2, 3], prediction: [0, 1, 2, 3])       // τ 1, wrong 0, any 0
        try metrics.add(truth: [0, 1, 2, 3], prediction: [1, 0, 2, 3])       // τ 1 − 2·1/6 = 2/3, wrong 0.5, any 1
        try metrics.add(truth: [0], prediction: [0])                         // τ NaN (one item), wrong 0, any 0
        try metrics.add(reconstruction: [1, 1], target: [0, 1])              // |·| 1, 0; squares 1, 0
        try metrics.add(reconstruction: [3, 0], target: [1, 0])              // |·| 2, 0; squares 4, 0
        let before = metrics
        #expect(throws: PermutationError.lengthMismatch(expected: 2, found: 1)) {
            try metrics.add(truth: [0, 1], prediction: [0])
        }
        #expect(throws: PermutationError.lengthMismatch(expected: 1, found: 2)) {
            try metrics.add(reconstruction: [0], target: [0, 1])
        }
        #expect(metrics == before)
        #expect(metrics.puzzles == 3 && metrics.undefinedKendallTauCount == 1)
        #expect(abs(metrics.meanKendallTau - (1 + 2.0 / 3) / 2) < 1e-15)
        #expect(metrics.meanProportionWrong == 0.5 / 3)
        #expect(metrics.proportionAnyWrong == 1.0 / 3)
        #expect(metrics.meanL1 == 3.0 / 4 && metrics.meanL2 == 5.0 / 4)
        var merged = PermutationMetricsAccumulator()
        var other = PermutationMetricsAccumulator()
        try merged.add(truth: [0, 1, 2, 3], prediction: [0, 1, 2, 3])
        try merged.add(reconstruction: [1, 1], target: [0, 1])
        try other.add(truth: [0, 1, 2, 3], prediction: [1, 0, 2, 3])
        try other.add(truth: [0], prediction: [0])
        try other.add(reconstruction: [3, 0], target: [1, 0])
        merged.merge(other)
        #expect(merged == metrics)
    }
}
