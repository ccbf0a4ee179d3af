import Foundation
import Jigsaw
import NeuralNet
import Permutations
import Testing
import TensorKit

@Suite struct JigsawEvaluatorTests {
    /// A 4×4 image cut 2×2: one cell with ink, three identical blank cells.
    func oneInkedCell(count: Int) -> ImageDataset {
        var pixels = [UInt8](repeating: 0, count: count * 16)
        for image in 0..<count { pixels[image * 16 + 0] = 200 }  // top-left cell
        return ImageDataset(count: count, channels: 1, height: 4, width: 4, pixels: pixels, labels: nil)
    }

    /// Kendall tau-b written out over all pairs (ties counted in both factors), for the reference.
    func tauB(_ x: [Int], _ y: [Int]) -> Double {
        var concordant = 0.0, discordant = 0.0, tiesX = 0.0, tiesY = 0.0
        for i in 0..<x.count {
            for j in (i + 1)..<x.count {
                let dx = x[i] - x[j], dy = y[i] - y[j]
                if dx == 0 && dy == 0 { continue }
                if dx == 0 { tiesX += 1; continue }
                if dy == 0 { tiesY += 1; continue }
                if (dx > 0) == (dy > 0) { concordant += 1 } else { discordant += 1 }
            }
        }
        return (concordant - discordant) / ((concordant + discordant + tiesX) * (concordant + discordant + tiesY)).squareRoot()
    }

    @Test func identicalPieceBoundMatchesTheClosedForm() throws {
        let bound = try JigsawEvaluator.indistinguishablePieceBound(dataset: oneInkedCell(count: 50), grid: 2,
                                                                     seed: 1, draws: 200)
        // Three interchangeable cells: 2 of 4 pieces wrong on average, all right with probability 1/3!.
        #expect(abs(bound.propWrong - 0.5) < 1e-12)
        #expect(abs(bound.propAnyWrong - 5.0 / 6.0) < 1e-12)
        // Exact expectation over the 6 orderings of cells 1, 2, 3.
        let orderings = [[1, 2, 3], [1, 3, 2], [2, 1, 3], [2, 3, 1], [3, 1, 2], [3, 2, 1]]
        let expected = orderings.map { tauB([0, 1, 2, 3], [0] + $0) }.reduce(0, +) / 6
        // 10,000 draws: the standard error of the mean is below 0.006.
        #expect(abs(bound.kendallTau - expected) < 0.03, "Monte Carlo \(bound.kendallTau) vs exact \(expected)")
        #expect(bound.l1 == 0 && bound.puzzles == 50)
    }

    @Test func distinctPiecesHaveAPerfectBound() throws {
        var generator = SeededGenerator(seed: 4)
        let pixels = (0..<(10 * 36)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        let noise = ImageDataset(count: 10, channels: 1, height: 6, width: 6, pixels: pixels, labels: nil)
        let bound = try JigsawEvaluator.indistinguishablePieceBound(dataset: noise, grid: 3, seed: 1)
        #expect(bound.propWrong == 0 && bound.propAnyWrong == 0 && bound.kendallTau == 1)
    }

    @Test func shippedTwoByTwoModelSolvesFixtureDigits() throws {
        let models = URL(fileURLWithPath: fixturesDirectory).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Models/mnist-2x2.safetensors").path
        let loaded = try JigsawModelFile.load(contentsOfFile: models)
        let digits = try ImageDataset.mnist(directory: fixturesDirectory, split: .test)
        let result = try JigsawEvaluator.evaluate(network: loaded.network, dataset: digits, seed: 0)
        #expect(result.puzzles == 300)
        #expect(result.kendallTau > 0.97 && result.propWrong < 0.02, "\(result.json)")
        // The metrics recomputed from scratch: solve each puzzle with the model and compare.
        var generator = SeededGenerator(seed: 0)
        var batch = PuzzleBatch(batchSize: 300, grid: 2, channels: 1, height: 28, width: 28)
        batch.fill(from: digits, indices: 0..<300, generator: &generator, normalization: (mean: 0.1307, std: 0.3081))
        let matchings = try LinearAssignment.matchings(scores: loaded.network.forward(batch.scrambled))
        var wrong = 0
        for b in 0..<300 { wrong += zip(batch.permutation(b), matchings[b]).filter { $0 != $1 }.count }
        #expect(abs(result.propWrong - Double(wrong) / 1200) < 1e-9)
    }

    /// Every shipped MNIST jigsaw model, re-evaluated on the 300 fixture digits (the first 300 test
    /// images), lands near the whole-test-set figures recorded in its metadata: the files load with
    /// their architecture (set context included) and the recorded figures are the model's own.
    @Test(arguments: [2, 3, 4, 5, 6])
    func shippedModelMatchesItsRecordedFigures(grid: Int) throws {
        let path = URL(fileURLWithPath: fixturesDirectory).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Models/mnist-\(grid)x\(grid).safetensors").path
        let loaded = try JigsawModelFile.load(contentsOfFile: path)
        #expect(loaded.network.configuration.grid == grid)
        let recordedTau = try #require(loaded.metadata["eval.kendall_tau"].flatMap(Double.init))
        let recordedWrong = try #require(loaded.metadata["eval.prop_wrong"].flatMap(Double.init))
        #expect(loaded.metadata["eval.puzzles"] == "10000")
        let digits = try ImageDataset.mnist(directory: fixturesDirectory, split: .test)
        let result = try JigsawEvaluator.evaluate(network: loaded.network, dataset: digits, seed: 0)
        // 300 puzzles: a standard error of about 0.01 on both figures; 0.06 is six of them.
        #expect(abs(result.kendallTau - recordedTau) < 0.06, "\(grid)×\(grid): \(result.json), recorded tau \(recordedTau)")
        #expect(abs(result.propWrong - recordedWrong) < 0.06, "\(grid)×\(grid): \(result.json), recorded wrong \(recordedWrong)")
    }

    /// The figures do not depend on the worker count: the shipped 3×3 model's scores on the 300
    /// fixture digits are bitwise the same on 1 and 2 threads (so exact ties between identical
    /// pieces break the same way), and so is every figure of the evaluation.
    @Test func evaluationDoesNotDependOnTheThreadCount() throws {
        let path = URL(fileURLWithPath: fixturesDirectory).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Models/mnist-3x3.safetensors").path
        let loaded = try JigsawModelFile.load(contentsOfFile: path)
        let digits = try ImageDataset.mnist(directory: fixturesDirectory, split: .test)
        var generator = SeededGenerator(seed: 0)
        var batch = PuzzleBatch(batchSize: 300, grid: 3, channels: 1, height: 28, width: 28)
        batch.fill(from: digits, indices: 0..<300, generator: &generator, normalization: nil)
        loaded.network.isTraining = false
        var scores: [[Float]] = []
        var figures: [String] = []
        for threads in [1, 2] {
            loaded.network.threadCount = threads
            scores.append(JigsawInference.scores(loaded.network, pieces: batch.scrambled).withUnsafeBufferPointer { Array($0) })
            figures.append(try JigsawEvaluator.evaluate(network: loaded.network, dataset: digits, seed: 0, batchSize: 256).json)
        }
        let differing = zip(scores[0], scores[1]).filter { $0.bitPattern != $1.bitPattern }.count
        #expect(scores[0].count == 300 * 81 && differing == 0, "\(differing) scores differ between 1 and 2 threads")
        #expect(figures[0] == figures[1], "1 thread: \(figures[0]); 2 threads: \(figures[1])")
    }
}
