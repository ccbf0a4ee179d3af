import Dispatch
import NeuralNet
import Permutations
import TensorKit

/// The learning-free baseline on real photos: centre crops of each photo cut into `grid × grid`
/// pieces, scrambled several times with seeded permutations, solved with `ClassicSolver` on
/// `EdgeCompatibility` costs and scored with `PermutationMetricsAccumulator`; each scrambled image
/// is also given to `GridDetector`.
public enum ClassicBaseline {
    public struct Result: Sendable {
        public var grid: Int
        public var pieceSide: Int
        public var photos: Int
        /// Distinct crops evaluated (`photos · cropsPerPhoto`).
        public var crops: Int
        public var metrics: PermutationMetricsAccumulator
        /// The same on equal terms (``EqualTerms``: pixel-identical pieces are interchangeable).
        public var equalTerms: PermutationMetricsAccumulator
        /// Scrambled images whose grid `GridDetector` found.
        public var gridDetected: Int
        /// Mean wall time of one solve (costs plus search), in milliseconds.
        public var meanSolveMilliseconds: Double

        public var puzzles: Int { metrics.puzzles }
        public var gridAccuracy: Double { metrics.puzzles == 0 ? 0 : Double(gridDetected) / Double(metrics.puzzles) }
    }

    /// A scrambled puzzle from one image `[C, H, W]`: scrambled pieces `[1, n, C, h, w]`, the answer
    /// `π` and the scrambled image (pieces joined in slot order).
    public static func scramble(_ image: Tensor, grid: Int, generator: inout SeededGenerator)
        -> (pieces: Tensor, permutation: [Int], image: Image) {
        let cut = Puzzle.cut(image, grid: grid)
        let (pieces, permutations) = Puzzle.scramble(cut, generator: &generator)
        let joined = Puzzle.join(pieces)
        return (pieces, permutations[0], Image(tensor: joined.reshaped([joined.shape[1], joined.shape[2], joined.shape[3]])))
    }

    /// Evaluates on `photos.testCrops(side: grid · pieceSide, perPhoto: cropsPerPhoto)` with
    /// `scrambles` permutations per crop, drawn from `SeededGenerator(seed:).derived(crop index)`;
    /// crops run in parallel. The solver is equivariant to the scramble (up to ties), so distinct
    /// crops, not scrambles, are what widen the sample.
    public static func evaluate(
        photos: PhotoCollection, grid: Int, pieceSide: Int, scrambles: Int = 4, seed: UInt64 = 0,
        measure: EdgeCompatibility.Measure = .prediction(), detector: GridDetector = GridDetector(),
        beamWidth: Int = 256, cropsPerPhoto: Int = 1
    ) -> Result {
        let crops = photos.testCrops(side: grid * pieceSide, perPhoto: cropsPerPhoto, grid: grid)
        let root = SeededGenerator(seed: seed)
        let partials = UnsafeMutableBufferPointer<(PermutationMetricsAccumulator, PermutationMetricsAccumulator, Int, Double)>
            .allocate(capacity: crops.count)
        partials.initialize(repeating: (PermutationMetricsAccumulator(), PermutationMetricsAccumulator(), 0, 0))
        defer { partials.deinitialize(); partials.deallocate() }
        nonisolated(unsafe) let out = partials
        DispatchQueue.concurrentPerform(iterations: crops.count) { index in
            var generator = root.derived(UInt64(index))
            let image = crops.tensor(index..<(index + 1))
            let single = image.reshaped([image.shape[1], image.shape[2], image.shape[3]])
            var metrics = PermutationMetricsAccumulator(), equalTerms = PermutationMetricsAccumulator()
            var detected = 0
            var milliseconds = 0.0
            for _ in 0..<scrambles {
                let puzzle = scramble(single, grid: grid, generator: &generator)
                let start = DispatchTime.now().uptimeNanoseconds
                let costs = EdgeCompatibility(pieces: puzzle.pieces, measure: measure)
                let prediction = ClassicSolver.solve(costs, grid: grid, beamWidth: beamWidth)
                milliseconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
                try? metrics.add(truth: puzzle.permutation, prediction: prediction)
                let relabelled = puzzle.pieces.withUnsafeBufferPointer { pieces in
                    EqualTerms.prediction(truth: puzzle.permutation, prediction: prediction, pieces: pieces,
                                          pieceLength: pieces.count / prediction.count)
                }
                try? equalTerms.add(truth: puzzle.permutation, prediction: relabelled)
                if detector.detect(puzzle.image).grid == grid { detected += 1 }
            }
            out[index] = (metrics, equalTerms, detected, milliseconds)
        }
        var metrics = PermutationMetricsAccumulator(), equalTerms = PermutationMetricsAccumulator()
        var detected = 0
        var milliseconds = 0.0
        for (m, e, d, t) in partials { metrics.merge(m); equalTerms.merge(e); detected += d; milliseconds += t }
        return Result(grid: grid, pieceSide: pieceSide, photos: photos.images.count, crops: crops.count, metrics: metrics,
                      equalTerms: equalTerms, gridDetected: detected,
                      meanSolveMilliseconds: metrics.puzzles == 0 ? 0 : milliseconds / Double(metrics.puzzles))
    }
}
