import Permutations
import TensorKit

/// `assignment`: median wall time of one linear assignment (minimising) on a uniform random
/// `n × n` Double matrix, the setting of scipy's `linear_sum_assignment` benchmarks.
let assignmentBenchmarks: [Benchmark] = [
    Benchmark(op: "assignment") {
        for n in [9, 36, 100, 500, 1000, 2000] {
            var generator = SeededGenerator(seed: 0xA551_6000 + UInt64(n))
            let costs = (0..<(n * n)).map { _ in generator.nextUniformDouble() }
            var checksum = 0.0
            let ms = medianMilliseconds(minRuns: 5, budget: n >= 1000 ? 3.0 : 1.0) {
                do {
                    checksum += try LinearAssignment.solve(costs: costs, rows: n, columns: n).cost
                } catch {
                    fatalError("assignment benchmark: \(error)")
                }
            }
            emit(["op": "assignment", "n": n, "ms": ms, "checksum": checksum.isFinite ? 1 : 0])
        }
    },
]
