import Foundation
import Jigsaw
import NeuralNet
import Permutations
import Testing
import TensorKit

/// The tutorial network against values computed by PyTorch 2.13 (CPU, float32) with the tutorial's
/// own code (Tests/Fixtures/torch/generate.py). Tolerances: PyTorch's float32 results differ from a
/// float64 evaluation by at most 9e-7 for scores and P, and by 2.6e-6 of the largest gradient, so an
/// independent float32 implementation should agree within 1e-5 (scores, P) and 1e-4 of each
/// gradient's scale.
@Suite struct PyTorchParityTests {
    let torch = fixturesDirectory + "/torch"

    func file(_ name: String) throws -> SafetensorsFile {
        try SafetensorsFile(contentsOfFile: torch + "/" + name + ".safetensors")
    }

    func expectClose(_ a: Tensor, _ b: Tensor, tolerance: Float, _ what: String,
                     sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(a.shape == b.shape, "\(what): shape \(a.shape) vs \(b.shape)", sourceLocation: sourceLocation)
        guard a.shape == b.shape else { return }
        let error = a.maxAbsDifference(b)
        #expect(error <= tolerance, "\(what): max error \(error) > \(tolerance)", sourceLocation: sourceLocation)
    }

    @Test func pytorchExportLoadsWithInferredArchitectureAndGivesTheSameEvalScores() throws {
        let loaded = try JigsawModelFile.load(contentsOfFile: torch + "/tutorial-2x2-random.safetensors")
        #expect(loaded.inferredConfiguration)
        #expect(loaded.network.configuration == JigsawNetworkConfiguration())
        let reference = try file("tutorial-2x2-reference")
        let scores = loaded.network.forward(try reference.tensor(named: "scrambled_pieces"))
        expectClose(scores, try reference.tensor(named: "eval_scores"), tolerance: 1e-5, "eval scores")
        // The matching of those scores is scipy's linear_sum_assignment(-scores).
        let expected = try reference.tensor(named: "eval_matching").storage.map { Int($0) }
        #expect(try LinearAssignment.matchings(scores: scores).flatMap { $0 } == expected)
    }

    /// One training step with all 16 pieces through the CNN in one call (BatchNorm statistics over the
    /// whole batch), fixed Gumbel noise, τ = 0.1, 20 iterations, summed MSE: scores, P, loss, every
    /// gradient and the running statistics.
    @Test func trainingStepMatchesPyTorchAutograd() throws {
        let loaded = try JigsawModelFile.load(contentsOfFile: torch + "/tutorial-2x2-random.safetensors")
        let network = loaded.network
        network.isTraining = true
        network.threadCount = 1
        let reference = try file("tutorial-2x2-reference")
        let step = try file("tutorial-2x2-train-step")
        let scrambled = try reference.tensor(named: "scrambled_pieces")
        let pieces = try reference.tensor(named: "pieces")
        let tau = try step.tensor(named: "tau").storage[0]
        let iterations = Int(try step.tensor(named: "iterations").storage[0])

        let scores = network.forward(scrambled)
        expectClose(scores, try step.tensor(named: "joint.train_scores"), tolerance: 1e-5, "train scores")
        var perturbed = scores
        let noise = try step.tensor(named: "gumbel_noise")
        for i in 0..<perturbed.count { perturbed.storage[i] += noise.storage[i] }
        let result = try Sinkhorn.forward(perturbed, temperature: tau, iterations: iterations, recordsHistory: true)
        expectClose(result.matrix, try step.tensor(named: "joint.train_P"), tolerance: 1e-5, "P")

        var upstream = Tensor(shape: [0])
        var scratch: [Float] = []
        let loss = ReconstructionLoss.sumOfSquares(matrices: result.matrix, scrambled: scrambled, target: pieces,
                                                   puzzles: 4, samplesPerExample: 1, upstream: &upstream,
                                                   scratch: &scratch)
        let torchLoss = Double(try step.tensor(named: "joint.train_loss").storage[0])
        #expect(abs(loss - torchLoss) <= 1e-5 * torchLoss, "loss \(loss) vs \(torchLoss)")

        let scoresGradient = try Sinkhorn.unrolledGradient(result, scores: perturbed, upstream: upstream)
        network.zeroGradients()
        network.backward(scoresGradient)
        for name in ["g_1.0.weight", "g_1.0.bias", "g_1.3.weight", "g_1.3.bias", "g_2.weight"] {
            let want = try step.tensor(named: "joint.grad." + name)
            let scale = want.storage.map { abs($0) }.max() ?? 1
            guard let parameter = network.parameter(named: name) else { Issue.record("no parameter \(name)"); continue }
            expectClose(parameter.gradient, want, tolerance: 1e-4 * scale, "gradient of \(name)")
        }
        let tensors = network.namedTensors()
        for name in ["g_1.3.running_mean", "g_1.3.running_var"] {
            guard let got = tensors[name] else { Issue.record("no buffer \(name)"); continue }
            expectClose(got, try step.tensor(named: "joint.after." + name), tolerance: 1e-5, name)
        }
    }

    /// Adam's first step from PyTorch's gradients reproduces `torch.optim.Adam(lr=1e-4, eps=1e-8)`.
    @Test func adamStepMatchesPyTorch() throws {
        let loaded = try JigsawModelFile.load(contentsOfFile: torch + "/tutorial-2x2-random.safetensors")
        let step = try file("tutorial-2x2-train-step")
        let names = ["g_1.0.weight", "g_1.0.bias", "g_1.3.weight", "g_1.3.bias", "g_2.weight"]
        let parameters = names.compactMap { loaded.network.parameter(named: $0) }
        #expect(parameters.count == names.count)
        for parameter in parameters { parameter.gradient = try step.tensor(named: "grad." + parameter.name) }
        let adam = Adam(parameters: parameters, learningRate: 1e-4, epsilon: 1e-8)
        adam.step()
        for parameter in parameters {
            expectClose(parameter.value, try step.tensor(named: "adam1." + parameter.name), tolerance: 1e-6,
                        "Adam update of \(parameter.name)")
        }
    }
}
