import Jigsaw
import Testing
import TensorKit

/// Every permutation of `0..<n` (Heap's algorithm), for brute-force checks on small grids.
private func allPermutations(_ n: Int) -> [[Int]] {
    var result: [[Int]] = []
    var a = Array(0..<n)
    func generate(_ k: Int) {
        if k <= 1 { result.append(a); return }
        for i in 0..<k {
            generate(k - 1)
            a.swapAt(k % 2 == 0 ? i : 0, k - 1)
        }
    }
    generate(n)
    return result
}

@Suite struct PuzzleTests {
    /// A 1-channel 4×4 image holding 0…15 row-major.
    static let counting = Tensor(shape: [1, 4, 4], storage: (0..<16).map(Float.init))

    @Test func cutsRowMajorCells() {
        let pieces = Puzzle.cut(Self.counting, grid: 2)
        #expect(pieces.shape == [1, 4, 1, 2, 2])
        // Cells by hand: top-left, top-right, bottom-left, bottom-right.
        #expect(pieces.storage == [0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15])
        #expect(Puzzle.join(pieces) == Self.counting.reshaped([1, 1, 4, 4]))
    }

    @Test func cropsTheCentreWhenTheGridDoesNotDivide() {
        // 11 × 11 with grid 3: pieces of 3, offset (11 − 9) / 2 = 1 on both axes.
        let image = Tensor(shape: [1, 11, 11], storage: (0..<121).map(Float.init))
        let pieces = Puzzle.cut(image, grid: 3)
        #expect(pieces.shape == [1, 9, 1, 3, 3])
        #expect(Array(pieces.storage[0..<9]) == [12, 13, 14, 23, 24, 25, 34, 35, 36])
        // Cell 5 (row 1, column 2): rows 4…6, columns 7…9.
        #expect(Array(pieces.storage[45..<54]) == [51, 52, 53, 62, 63, 64, 73, 74, 75])
    }

    @Test func hardReassemblyFollowsTheConvention() {
        // π = [2, 0, 3, 1]: slot s holds cell π[s]; reassembly puts piece i in cell π[i].
        let pieces = Puzzle.cut(Self.counting, grid: 2)
        let scrambled = Puzzle.gather(pieces, order: [[2, 0, 3, 1]])
        #expect(Array(scrambled.storage[0..<4]) == [8, 9, 12, 13])  // cell 2 in slot 0
        #expect(Array(scrambled.storage[4..<8]) == [0, 1, 4, 5])    // cell 0 in slot 1
        #expect(Puzzle.assemble(scrambled, permutations: [[2, 0, 3, 1]]) == Self.counting.reshaped([1, 1, 4, 4]))
        // A wrong answer swaps the pieces it gets wrong.
        let wrong = Puzzle.assemble(scrambled, permutations: [[0, 2, 3, 1]])
        #expect(Array(wrong.storage[0..<2]) == [8, 9])
    }

    @Test func everyPermutationRoundTrips() {
        // Brute force over all 24 permutations of a 2×2 grid on a 2-image, 3-channel batch.
        var rng = SeededGenerator(seed: 11)
        let images = rng.uniform([2, 3, 6, 6])
        let pieces = Puzzle.cut(images, grid: 2)
        for permutation in allPermutations(4) {
            let scrambled = Puzzle.gather(pieces, order: [permutation, permutation.reversed()])
            #expect(Puzzle.assemble(scrambled, permutations: [permutation, permutation.reversed()]) == images,
                    "permutation \(permutation)")
        }
    }

    @Test(arguments: [2, 3, 4, 5])
    func scrambleThenAssembleIsIdentity(grid: Int) {
        for seed in UInt64(0)..<20 {
            var rng = SeededGenerator(seed: seed)
            let images = rng.uniform([3, 1, 28, 28])
            let pieces = Puzzle.cut(images, grid: grid)
            let (scrambled, permutations) = Puzzle.scramble(pieces, generator: &rng)
            #expect(permutations.allSatisfy { Puzzle.isPermutation($0, count: grid * grid) })
            let side = 28 / grid * grid, offset = (28 - side) / 2
            let restored = Puzzle.assemble(scrambled, permutations: permutations)
            #expect(restored.shape == [3, 1, side, side])
            var matches = true
            for b in 0..<3 {
                for y in 0..<side {
                    for x in 0..<side where restored[b, 0, y, x] != images[b, 0, y + offset, x + offset] { matches = false }
                }
            }
            #expect(matches, "grid \(grid), seed \(seed)")
        }
    }

    @Test func softReassemblyIsAWeightedSum() {
        var rng = SeededGenerator(seed: 3)
        let pieces = rng.uniform([2, 4, 2, 3, 3])
        let matrices = rng.uniform([2, 4, 4])
        let result = Puzzle.unscramble(pieces, soft: matrices)
        // out[b, j] = Σ_i P[b, i, j] · piece[b, i], by explicit loops in Double.
        var worst: Double = 0
        for b in 0..<2 {
            for j in 0..<4 {
                for k in 0..<18 {
                    var sum: Double = 0
                    for i in 0..<4 { sum += Double(matrices[b, i, j]) * Double(pieces.storage[(b * 4 + i) * 18 + k]) }
                    worst = max(worst, abs(sum - Double(result.storage[(b * 4 + j) * 18 + k])))
                }
            }
        }
        #expect(worst < 1e-5, "float32 sums of four products of values below 1")
        // A permutation matrix gives exactly the hard answer.
        let permutation = [3, 1, 0, 2]
        var matrix = Tensor(shape: [4, 4])
        for (i, j) in permutation.enumerated() { matrix[i, j] = 1 }
        let single = Tensor(shape: [1, 4, 2, 3, 3], storage: Array(pieces.storage[0..<72]))
        #expect(Puzzle.assemble(single, soft: matrix) == Puzzle.assemble(single, permutations: [permutation]))
    }

    @Test func batchBuilderMatchesCutAndScramble() {
        var rng = SeededGenerator(seed: 99)
        let dataset = ImageDataset(count: 10, channels: 1, height: 28, width: 28,
                                   pixels: (0..<(10 * 784)).map { _ in UInt8(rng.nextInt(below: 256)) })
        let images = dataset.tensor()
        var batch = PuzzleBatch(batchSize: 4, grid: 3, channels: 1, height: 28, width: 28)
        for (round, indices) in [[7, 2, 2, 9], [0, 5, 1]].enumerated() {
            var generator = SeededGenerator(seed: UInt64(round))
            batch.fill(from: images, indices: indices, generator: &generator)
            // The reference: the same images through cut + scramble with the same seed.
            var reference = SeededGenerator(seed: UInt64(round))
            let selected = Tensor(shape: [indices.count, 1, 28, 28],
                                  storage: indices.flatMap { Array(images.storage[($0 * 784)..<(($0 + 1) * 784)]) })
            let cut = Puzzle.cut(selected, grid: 3)
            let (scrambled, permutations) = Puzzle.scramble(cut, generator: &reference)
            #expect(batch.count == indices.count)
            #expect(batch.unscrambled == cut, "round \(round)")
            #expect(batch.scrambled == scrambled, "round \(round)")
            #expect((0..<indices.count).map(batch.permutation) == permutations, "round \(round)")
            // The 8-bit path with normalisation gives (x/255 − mean)/std of the same pieces.
            var again = SeededGenerator(seed: UInt64(round))
            var normalised = PuzzleBatch(batchSize: 1, grid: 3, channels: 1, height: 28, width: 28)
            normalised.fill(from: dataset, indices: indices, generator: &again, normalization: (0.1307, 0.3081))
            #expect(normalised.permutations == batch.permutations)
            let expected = batch.scrambled.storage.map { ($0 - 0.1307) / 0.3081 }
            #expect(zip(normalised.scrambled.storage, expected).allSatisfy { abs($0 - $1) < 1e-5 }, "round \(round)")
        }
    }
}
