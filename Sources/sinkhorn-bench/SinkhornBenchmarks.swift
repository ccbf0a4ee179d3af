import Foundation
import Permutations
import TensorKit

let sinkhornSizes: [(batch: Int, n: Int, iterations: Int)] = [
    (64, 4, 20), (64, 9, 20), (64, 36, 20), (1, 100, 20), (1, 1000, 20), (1, 1000, 100),
]

let sinkhornBenchmarks: [Benchmark] = [
    Benchmark(op: "sinkhorn_forward") {
        let workspace = SinkhornWorkspace()
        for size in sinkhornSizes {
            var rng = SeededGenerator(seed: 7)
            let scores = rng.normal([size.batch, size.n, size.n])
            let ms = medianMilliseconds {
                _ = try? Sinkhorn.forward(scores, temperature: 1, iterations: size.iterations, workspace: workspace)
            }
            emit(["op": "sinkhorn_forward", "B": size.batch, "n": size.n, "L": size.iterations, "ms": ms])
        }
    },
]
