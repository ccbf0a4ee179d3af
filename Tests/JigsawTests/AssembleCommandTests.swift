import Foundation
import Jigsaw
import NeuralNet
import Testing

/// `jigsaw-train assemble train|evaluate` on the 300 fixture digits (used as both splits).
@Suite struct AssembleCommandTests {
    let runner = TrainCommandTests()

    @Test func trainThenEvaluateWithFigures() throws {
        let folder = try ClassifierCommandTests().dataFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let weights = folder.appendingPathComponent("assembly.safetensors").path
        let trained = try runner.run(["assemble", "train", "--data-dir", folder.path, "--grid", "4", "--hidden", "8",
                                      "--epochs", "1", "--batch-size", "32", "--validation-size", "50", "--eval-limit", "20",
                                      "--stroke-probability", "0.5", "--threads", "1", "-o", weights])
        #expect(trained.status == 0, "\(trained.error)")
        let loaded = try JigsawModelFile.load(contentsOfFile: weights)
        #expect(loaded.network.configuration.scoreHeads == 10)
        #expect(loaded.metadata["train.stroke_probability"] == "0.5")

        let classifier = runner.repository.appendingPathComponent("Models/classifiers/mnist-classifier.safetensors").path
        let figure = folder.appendingPathComponent("figure.png").path, soft = folder.appendingPathComponent("soft.png").path
        let evaluated = try runner.run(["assemble", "evaluate", "--weights", weights, "--classifier", classifier,
                                        "--data-dir", folder.path, "--figure", figure, "--soft-figure", soft,
                                        "--figure-zoom", "1", "--threads", "1", "--record", "--json"])
        #expect(evaluated.status == 0, "\(evaluated.error)")
        let object = try JSONSerialization.jsonObject(with: Data(evaluated.output.utf8)) as? [String: Any] ?? [:]
        #expect(object["sources"] as? Int == 300)
        let recognised = object["recognised"] as? Double ?? -1
        let other = object["recognised_other_class"] as? Double ?? -1, own = object["recognised_own_class"] as? Double ?? -1
        #expect(abs(recognised - (0.9 * other + 0.1 * own)) < 1e-9, "\(object)")
        #expect((object["template_recognised"] as? Double).map { (0...1).contains($0) } == true)
        #expect((object["by_source"] as? [[Double]])?.count == 10)
        // The figures: one row per class, a column for the source, its scramble and each target.
        for path in [figure, soft] {
            let picture = try PNG.decode([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))))
            #expect(picture.width == 12 * 28 + 11 * 2 + 2 * 8 && picture.height == 10 * 28 + 9 * 2, "\(path)")
        }
        // --record stored the figures, and the file still verifies.
        let recorded = try JigsawModelFile.load(contentsOfFile: weights)
        #expect(recorded.checksumVerified)
        #expect(abs((Double(recorded.metadata["assembly.recognised"] ?? "") ?? -1) - recognised) < 1e-5)
        #expect(recorded.metadata["assembly.classifier_sha256"]?.isEmpty == false)

        // A one-head jigsaw model is refused with the reason.
        let jigsaw = runner.repository.appendingPathComponent("Models/mnist-2x2.safetensors").path
        let refused = try runner.run(["assemble", "evaluate", "--weights", jigsaw, "--classifier", classifier,
                                      "--data-dir", folder.path, "--no-baseline"])
        #expect(refused.status != 0)
        #expect(refused.error.contains("one score head"), "\(refused.error)")
    }

    @Test(arguments: [
        (["assemble", "evaluate", "--weights", "/nonexistent.safetensors", "--classifier", "/tmp", "--data-dir", "/tmp"], "--weights"),
        (["assemble", "evaluate", "--weights", "/tmp", "--classifier", "/tmp", "--data-dir", "/tmp", "--limit", "0"], "--limit"),
        (["assemble", "evaluate", "--weights", "/tmp", "--classifier", "/tmp", "--data-dir", "/tmp", "--record", "--limit", "5"], "--record"),
        (["assemble", "evaluate", "--weights", "/tmp", "--classifier", "/tmp", "--data-dir", "/tmp", "--figure-sources", "1,x"], "--figure-sources"),
        (["assemble", "train", "--data-dir", "/tmp", "--dataset", "photos", "--channels", "3"], "labelled digits"),
    ])
    func badFlagsAreRefused(arguments: [String], word: String) throws {
        let result = try runner.run(arguments)
        #expect(result.status == 64, "\(arguments): \(result.error)")
        #expect(result.error.contains(word), "\(arguments): \(result.error)")
    }
}
