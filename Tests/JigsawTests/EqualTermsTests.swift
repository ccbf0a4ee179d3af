import Jigsaw
import NeuralNet
import Permutations
import Testing
import TensorKit

@Suite("Equal-terms metrics")
struct EqualTermsTests {
    /// Every permutation of `0..<n`, written independently of the library.
    static func permutations(_ n: Int) -> [[Int]] {
        if n == 0 { return [[]] }
        return permutations(n - 1).flatMap { rest in (0...rest.count).map { var p = rest; p.insert(n - 1, at: $0); return p } }
    }

    /// Pieces of two values each `[value, value]`, from per-piece labels (equal label, equal pixels).
    static func pieces(_ labels: [Int]) -> [Float] { labels.flatMap { [Float($0), Float($0) / 2] } }

    @Test("on every prediction of small puzzles with repeated pieces, a piece is right exactly when its pixels equal the true occupant's, and the relabelling only permutes identical pieces",
          arguments: [[0, 0, 1, 2], [0, 0, 0, 1], [0, 1, 0, 1], [3, 3, 3, 3], [0, 1, 2, 3], [0, 0, 1, 1, 2]])
    func bruteForce(labels: [Int]) throws {
        let n = labels.count
        let values = Self.pieces(labels)
        var generator = SeededGenerator(seed: UInt64(n * 10 + labels.reduce(0, +)))
        for _ in 0..<3 {
            let truth = generator.permutation(n)
            for prediction in Self.permutations(n) {
                let relabelled = values.withUnsafeBufferPointer {
                    EqualTerms.prediction(truth: truth, prediction: prediction, pieces: $0, pieceLength: 2)
                }
                #expect(relabelled.sorted() == Array(0..<n))
                // Only identical pieces trade cells.
                for i in 0..<n where relabelled[i] != prediction[i] {
                    let owner = prediction.firstIndex(of: relabelled[i])!
                    #expect(labels[owner] == labels[i])
                }
                // Right on equal terms, by the definition: the true occupant of the predicted cell
                // (the piece k with truth[k] = cell) has the same pixels.
                let occupant = { (cell: Int) in truth.firstIndex(of: cell)! }
                let rightByDefinition = (0..<n).filter { labels[occupant(prediction[$0])] == labels[$0] }.count
                let right = (0..<n).filter { relabelled[$0] == truth[$0] }.count
                #expect(right == rightByDefinition, "truth \(truth), prediction \(prediction)")
                // No relabelling among identical pieces places more pieces right.
                var best = 0
                for candidate in Self.permutations(n) {
                    let cells = candidate.map { prediction[$0] }
                    guard (0..<n).allSatisfy({ labels[candidate[$0]] == labels[$0] }) else { continue }
                    best = max(best, (0..<n).filter { cells[$0] == truth[$0] }.count)
                }
                #expect(right == best)
            }
        }
    }

    @Test("the evaluator's equal-terms figures equal its exact ones when no two pieces are alike, and are at least as good otherwise")
    func evaluatorFigures() throws {
        var generator = SeededGenerator(seed: 4)
        // 2×2 puzzles of 8×8 images: random noise (all pieces distinct), then half black (two identical pieces).
        var pixels = [UInt8](repeating: 0, count: 40 * 64)
        for i in 0..<(20 * 64) { pixels[i] = UInt8(truncatingIfNeeded: generator.next()) }
        for image in 20..<40 { for y in 0..<8 { for x in 0..<8 where y < 4 { pixels[image * 64 + y * 8 + x] = UInt8(10 + x * 20 + y) } } }
        let noise = ImageDataset(count: 20, channels: 1, height: 8, width: 8, pixels: Array(pixels[0..<(20 * 64)]), labels: nil)
        let halfBlack = ImageDataset(count: 20, channels: 1, height: 8, width: 8, pixels: Array(pixels[(20 * 64)...]), labels: nil)
        let network = try JigsawNetwork(configuration: JigsawNetworkConfiguration(grid: 2, imageSize: 8, hiddenChannels: 2, kernelSize: 3), seed: 2)
        let distinct = try JigsawEvaluator.evaluate(network: network, dataset: noise, seed: 1)
        #expect(distinct.equalTermsPropWrong == distinct.propWrong && distinct.equalTermsKendallTau == distinct.kendallTau)
        let repeated = try JigsawEvaluator.evaluate(network: network, dataset: halfBlack, seed: 1)
        #expect(repeated.equalTermsPropWrong <= repeated.propWrong && repeated.equalTermsPropAnyWrong <= repeated.propAnyWrong)
        #expect(repeated.json.contains("\"equal_terms_prop_wrong\""))
    }
}
