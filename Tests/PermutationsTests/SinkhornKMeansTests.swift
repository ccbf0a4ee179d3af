import Foundation
import Permutations
import Testing
import TensorKit

/// `SinkhornKMeans` against brute-force distances, central differences of its own loss and a
/// hand-counted purity.
@Suite struct SinkhornKMeansTests {
    @Test func costIsTheMeanSquaredDistance() {
        var rng = SeededGenerator(seed: 1700)
        let points = rng.uniform([6, 5]).reshapedForTest([6, 5]), centroids = rng.uniform([3, 5]).reshapedForTest([3, 5])
        let cost = SinkhornKMeans.cost(points: points, centroids: centroids)
        #expect(cost.shape == [6, 3])
        for i in 0..<6 {
            for j in 0..<3 {
                var total: Float = 0
                for c in 0..<5 {
                    let difference = points.storage[i * 5 + c] - centroids.storage[j * 5 + c]
                    total += difference * difference
                }
                #expect(abs(cost.storage[i * 3 + j] - total / 5) < 1e-5, "seed 1700 (\(i), \(j))")
            }
        }
    }

    /// `∂loss/∂μ` against central differences, with a converged forward so both backwards apply.
    @Test(arguments: [TransportBackward.implicit, .unrolled])
    func gradientMatchesCentralDifferences(backward: TransportBackward) throws {
        var rng = SeededGenerator(seed: 1701)
        let (b, k, d) = (7, 3, 4)
        let points = rng.uniform([b, d]).reshapedForTest([b, d])
        let centroids = rng.uniform([k, d]).reshapedForTest([k, d])
        let (entropy, iterations): (Float, Int) = (0.05, 400)
        let step = try SinkhornKMeans.step(points: points, centroids: centroids, entropy: entropy,
                                           iterations: iterations, backward: backward)
        #expect(step.marginalError < 1e-5)
        let h: Float = 1e-3
        for index in [0, 3, 5, 8, 11] {
            var plus = centroids, minus = centroids
            plus.storage[index] += h
            minus.storage[index] -= h
            let lossPlus = try SinkhornKMeans.step(points: points, centroids: plus, entropy: entropy,
                                                   iterations: iterations, backward: backward).loss
            let lossMinus = try SinkhornKMeans.step(points: points, centroids: minus, entropy: entropy,
                                                    iterations: iterations, backward: backward).loss
            let numeric = (lossPlus - lossMinus) / (2 * h)
            let analytic = step.gradient.storage[index]
            #expect(abs(numeric - analytic) < 2e-3 * Swift.max(0.05, abs(analytic)),
                    "seed 1701 \(backward) μ[\(index)]: \(analytic) vs \(numeric)")
        }
        // Balanced: every cluster takes 1/k of the batch.
        for j in 0..<k {
            let share = (0..<b).reduce(Float(0)) { $0 + step.assignment.storage[$1 * k + j] }
            #expect(abs(share - 1 / Float(k)) < 1e-4)
        }
    }

    @Test func nearestAndPurityByHand() {
        let points = Tensor(shape: [5, 1], storage: [0, 0.1, 1, 1.2, 0.9])
        let centroids = Tensor(shape: [2, 1], storage: [1, 0])
        let clusters = SinkhornKMeans.nearest(points: points, centroids: centroids)
        #expect(clusters == [1, 1, 0, 0, 0])
        // Cluster 1 holds labels {3, 3}, cluster 0 holds {5, 5, 3}: 2 + 2 of 5 are their cluster's majority.
        #expect(SinkhornKMeans.purity(clusters: clusters, labels: [3, 3, 5, 5, 3], clusterCount: 2) == 0.8)
    }
}
