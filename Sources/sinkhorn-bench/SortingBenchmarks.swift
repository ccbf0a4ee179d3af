import Sorting
import Foundation
import NeuralNet
import Permutations
import TensorKit

/// Training-step sizes `(N, iterations)` of the sorting network: the paper's default and a longer
/// unroll at Eisenberger et al.'s smallest size.
let sortingStepSizes: [(n: Int, iterations: Int)] = [(50, 10), (120, 10), (200, 20)]

/// Sorting-network benchmarks: one training step (batch 10, 5 samples) per Sinkhorn backward, and
/// the Table 1 evaluation of one network. `backward_state_bytes` is what the backward keeps from
/// the forward (the tape, the recorded potentials, or nothing for the implicit backward); the
/// peak-memory sweep is `jigsaw-train sort scaling`, which measures each point in its own process.
let sortingBenchmarks: [Benchmark] = [
    Benchmark(op: "sorting_train_step") {
        BLAS.setThreads(1)
        for size in sortingStepSizes {
            for backward in SinkhornBackward.allCases {
                guard let network = try? SortingNetwork(configuration: SortingNetworkConfiguration(count: size.n), seed: 1),
                      let trainer = try? SortingTrainer(
                        network: network, settings: SortingTrainingSettings(iterations: size.iterations, backward: backward),
                        seed: 2) else { continue }
                var bytes = 0
                let ms = medianMilliseconds(warmup: 1, minRuns: 3, budget: 1.0) {
                    bytes = (try? trainer.step().backwardStateBytes) ?? 0
                }
                emit(["op": "sorting_train_step", "backward": backward.rawValue, "B": 10, "S": 5, "n": size.n,
                      "L": size.iterations, "ms": ms, "backward_state_bytes": bytes])
            }
        }
    },
    Benchmark(op: "sorting_evaluate") {
        BLAS.setThreads(1)
        for n in [50, 120] {
            guard let network = try? SortingNetwork(configuration: SortingNetworkConfiguration(count: n), seed: 1) else { continue }
            let ms = medianMilliseconds(warmup: 1, minRuns: 3, budget: 1.0) {
                _ = try? SortingEvaluation.evaluate(network, on: SortingTestDistribution(low: 0, high: 1), lists: 100, seed: 3)
            }
            emit(["op": "sorting_evaluate", "n": n, "lists": 100, "ms": ms])
        }
    },
]
