import Foundation
import Jigsaw
import NeuralNet
import TensorKit

/// A smooth synthetic RGB image `[3, side, side]` in [0, 1] (gradients plus sinusoids).
private func smoothPicture(side: Int) -> Tensor {
    var t = Tensor(shape: [3, side, side])
    for c in 0..<3 {
        for y in 0..<side {
            for x in 0..<side {
                let u = Double(x) / Double(side), v = Double(y) / Double(side)
                let value = 0.3 + 0.3 * u * Double(c + 1) / 3 + 0.2 * v + 0.12 * sin(2 * .pi * (1.3 * u + 0.7 * v) + Double(c))
                t[c, y, x] = Float(min(max(value, 0), 1))
            }
        }
    }
    return t
}

/// `classic_solve`: median wall time of the learning-free solver on one scrambled puzzle
/// (prediction-based edge costs, then exhaustive branch and bound for 2×2 and 3×3, beam search of
/// width 256 beyond), pieces of `piece` pixels; `cost_ms` is the edge costs alone and `correct`
/// whether the smooth test picture was solved exactly; the `costs: random` lines time the exact
/// search alone on uniform random costs.
let classicBenchmarks: [Benchmark] = [
    Benchmark(op: "classic_solve") {
        for (grid, piece) in [(2, 64), (3, 64), (3, 128), (4, 64), (5, 64), (6, 64)] {
            var generator = SeededGenerator(seed: 0xC1A5 + UInt64(grid))
            let puzzle = ClassicBaseline.scramble(smoothPicture(side: grid * piece), grid: grid, generator: &generator)
            var solution: [Int] = []
            let ms = medianMilliseconds(minRuns: 5, budget: 1.0) {
                solution = ClassicSolver.solve(EdgeCompatibility(pieces: puzzle.pieces), grid: grid)
            }
            let costMs = medianMilliseconds(minRuns: 5, budget: 0.5) { _ = EdgeCompatibility(pieces: puzzle.pieces) }
            let costs = EdgeCompatibility(pieces: puzzle.pieces)
            let searchMs = medianMilliseconds(minRuns: 5, budget: 0.5) { _ = ClassicSolver.solve(costs, grid: grid) }
            emit(["op": "classic_solve", "grid": grid, "piece": piece,
                  "solver": grid * grid <= ClassicSolver.exhaustiveLimit ? "exhaustive" : "beam256",
                  "ms": ms, "cost_ms": costMs, "search_ms": searchMs, "correct": solution == puzzle.permutation ? 1 : 0])
        }
        // The exact search's harder case: uniform random costs, where the bound prunes least.
        for grid in [2, 3] {
            let n = grid * grid
            var generator = SeededGenerator(seed: 0xC1A6 + UInt64(grid))
            let costs = EdgeCompatibility(count: n, left: (0..<(n * n)).map { _ in generator.nextUniform() },
                                          above: (0..<(n * n)).map { _ in generator.nextUniform() })
            let searchMs = medianMilliseconds(minRuns: 5, budget: 1.0) { _ = ClassicSolver.exhaustive(costs, grid: grid) }
            emit(["op": "classic_solve", "grid": grid, "costs": "random", "solver": "exhaustive", "search_ms": searchMs])
        }
    },
]
