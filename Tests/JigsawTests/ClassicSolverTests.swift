import Foundation
import Jigsaw
import NeuralNet
import Permutations
import Testing
import TensorKit

/// A smooth RGB test image in [0, 1]: gradients plus low-frequency sinusoids, different per channel.
func smoothTestPicture(side: Int, phase: Double = 0) -> Tensor {
    var t = Tensor(shape: [3, side, side])
    let s = Double(side)
    for c in 0..<3 {
        for y in 0..<side {
            for x in 0..<side {
                let u = Double(x) / s, v = Double(y) / s
                var value = 0.25 + 0.3 * u * Double(c + 1) / 3 + 0.2 * v
                value += 0.12 * sin(2 * .pi * (1.3 * u + 0.7 * v) + phase + Double(c))
                value += 0.08 * cos(2 * .pi * (0.4 * u - 1.1 * v) * Double(c + 1) + phase)
                t[c, y, x] = Float(min(max(value, 0), 1))
            }
        }
    }
    return t
}

/// Every permutation of `0..<n`, lexicographic, written independently of the solver.
private func permutationsOf(_ n: Int) -> [[Int]] {
    if n == 0 { return [[]] }
    var result: [[Int]] = []
    for rest in permutationsOf(n - 1) {
        for position in 0...rest.count {
            var p = rest
            p.insert(n - 1, at: position)
            result.append(p)
        }
    }
    return result
}

/// Brute-force total cost of placing piece `cells[k]` in cell `k`.
private func bruteCost(_ cells: [Int], grid: Int, left: [Float], above: [Float]) -> Float {
    let n = grid * grid
    var total: Float = 0
    for r in 0..<grid {
        for c in 0..<grid {
            let k = r * grid + c
            if c + 1 < grid { total += left[cells[k] * n + cells[k + 1]] }
            if r + 1 < grid { total += above[cells[k] * n + cells[k + grid]] }
        }
    }
    return total
}

@Suite struct ClassicSolverTests {
    @Test(arguments: [EdgeCompatibility.Measure.prediction(), .prediction(p: 0.3, q: 1.0 / 16), .mahalanobisGradient])
    func trueRightNeighbourIsCheapest(measure: EdgeCompatibility.Measure) {
        let grid = 3
        let pieces = Puzzle.cut(smoothTestPicture(side: 96), grid: grid)
        let costs = EdgeCompatibility(pieces: pieces, measure: measure)
        let n = grid * grid
        for i in 0..<n {
            if i % grid + 1 < grid {
                let truth = costs.left[i * n + i + 1]
                for j in 0..<n where j != i && j != i + 1 { #expect(truth < costs.left[i * n + j], "piece \(i) left of \(j)") }
            }
            if i + grid < n {
                let truth = costs.above[i * n + i + grid]
                for j in 0..<n where j != i && j != i + grid { #expect(truth < costs.above[i * n + j], "piece \(i) above \(j)") }
            }
        }
    }

    @Test(arguments: [2, 3])
    func exhaustiveMatchesBruteForce(grid: Int) {
        let n = grid * grid
        let all = permutationsOf(n)
        for trial in 0..<(grid == 2 ? 50 : 4) {
            var generator = SeededGenerator(seed: 0xC0_57 + UInt64(trial))
            var left = (0..<(n * n)).map { _ in generator.nextUniform() }
            var above = (0..<(n * n)).map { _ in generator.nextUniform() }
            for i in 0..<n { left[i * n + i] = .infinity; above[i * n + i] = .infinity }
            let costs = EdgeCompatibility(count: n, left: left, above: above)
            var best = Float.infinity
            for cells in all { best = min(best, bruteCost(cells, grid: grid, left: left, above: above)) }
            let permutation = ClassicSolver.exhaustive(costs, grid: grid)
            #expect(Puzzle.isPermutation(permutation, count: n))
            var cells = [Int](repeating: 0, count: n)
            for (piece, cell) in permutation.enumerated() { cells[cell] = piece }
            #expect(abs(bruteCost(cells, grid: grid, left: left, above: above) - best) <= 1e-5 * max(1, best))
        }
    }

    @Test(arguments: [0, 1, 2, 3])
    func exhaustiveSolvesSmoothThreeByThree(seed: Int) {
        var generator = SeededGenerator(seed: 0x3B3 + UInt64(seed))
        let puzzle = ClassicBaseline.scramble(smoothTestPicture(side: 96, phase: Double(seed)), grid: 3, generator: &generator)
        let costs = EdgeCompatibility(pieces: puzzle.pieces)
        let solution = ClassicSolver.solve(costs, grid: 3)
        #expect(solution == puzzle.permutation)
        let clock = ContinuousClock()
        let elapsed = clock.measure { _ = ClassicSolver.exhaustive(costs, grid: 3) }
        #expect(elapsed < .seconds(1))
    }

    @Test(arguments: [4, 5])
    func beamSearchSolvesSmoothLargerGrids(grid: Int) {
        var generator = SeededGenerator(seed: 0xBEA + UInt64(grid))
        let puzzle = ClassicBaseline.scramble(smoothTestPicture(side: grid * 32), grid: grid, generator: &generator)
        let solution = ClassicSolver.solve(EdgeCompatibility(pieces: puzzle.pieces), grid: grid)
        #expect(solution == puzzle.permutation)
    }

    @Test func solverOutputFollowsTheProjectConvention() throws {
        // Reassembling the scrambled pieces with the solution gives back the original cut.
        var generator = SeededGenerator(seed: 77)
        let image = smoothTestPicture(side: 90)
        let puzzle = ClassicBaseline.scramble(image, grid: 3, generator: &generator)
        let solution = ClassicSolver.solve(EdgeCompatibility(pieces: puzzle.pieces), grid: 3)
        let restored = Puzzle.unscramble(puzzle.pieces, permutations: [solution])
        #expect(restored == Puzzle.cut(image, grid: 3))
        var metrics = PermutationMetricsAccumulator()
        try metrics.add(truth: puzzle.permutation, prediction: solution)
        #expect(metrics.meanProportionWrong == 0)
    }
}

@Suite struct GridDetectorTests {
    /// A scramble of `grid` that keeps no original horizontal or vertical neighbour pair adjacent
    /// (so every segment of every cut line is a seam).
    private func scrambledImage(grid: Int, seed: UInt64, side: Int) -> Image {
        var generator = SeededGenerator(seed: seed)
        let image = smoothTestPicture(side: side, phase: Double(seed % 7))
        while true {
            let puzzle = ClassicBaseline.scramble(image, grid: grid, generator: &generator)
            let cells = puzzle.permutation  // cell s holds original cell π[s]
            var keepsNeighbour = false
            for s in 0..<(grid * grid) {
                if s % grid + 1 < grid && cells[s + 1] == cells[s] + 1 && cells[s] % grid + 1 < grid { keepsNeighbour = true }
                if s + grid < grid * grid && cells[s + grid] == cells[s] + grid { keepsNeighbour = true }
            }
            if !keepsNeighbour { return puzzle.image }
        }
    }

    @Test(arguments: [2, 3, 4, 5, 6])
    func detectsTheGridOfScrambledSmoothImages(grid: Int) {
        let detector = GridDetector()
        for seed in UInt64(0)..<3 {
            let detection = detector.detect(scrambledImage(grid: grid, seed: seed * 31 + UInt64(grid), side: 360))
            #expect(detection.grid == grid, "scores \(detection.scores.sorted { $0.key < $1.key })")
            #expect(detection.confidence > 0.5)
        }
    }

    @Test func unscrambledImageGivesLowConfidence() {
        let image = Image(tensor: smoothTestPicture(side: 360))
        let detection = GridDetector().detect(image)
        #expect(detection.confidence < 0.4, "scores \(detection.scores)")
    }

    @Test func grayImagesWork() {
        let rgb = scrambledImage(grid: 4, seed: 5, side: 240)
        #expect(GridDetector().detect(rgb.converted(toChannels: 1)).grid == 4)
    }
}
