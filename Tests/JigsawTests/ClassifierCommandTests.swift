import Foundation
import Jigsaw
import Testing

/// `jigsaw-train classifier train|evaluate` on the 300 fixture digits (used as both splits):
/// training writes a verified file that `evaluate` reads back with the recorded accuracy, and
/// damaged or foreign files are refused with a reason.
@Suite struct ClassifierCommandTests {
    let runner = TrainCommandTests()

    func dataFolder() throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("classifier-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let fixtures = URL(fileURLWithPath: fixturesDirectory)
        for (source, target) in [("mnist-test-300-images-idx3-ubyte.gz", "train-images-idx3-ubyte.gz"),
                                 ("mnist-test-300-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                                 ("mnist-test-300-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"),
                                 ("mnist-test-300-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz")] {
            try FileManager.default.copyItem(at: fixtures.appendingPathComponent(source), to: folder.appendingPathComponent(target))
        }
        return folder
    }

    @Test func trainThenEvaluate() throws {
        let folder = try dataFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let weights = folder.appendingPathComponent("c.safetensors").path
        let trained = try runner.run(["classifier", "train", "--data-dir", folder.path, "--epochs", "2", "--batch-size", "32",
                                      "--validation-size", "50", "--threads", "1", "-o", weights])
        #expect(trained.status == 0, "\(trained.error)")
        #expect(trained.output.contains("test accuracy"), "\(trained.output)")
        let evaluated = try runner.run(["classifier", "evaluate", "--weights", weights, "--data-dir", folder.path, "--json"])
        #expect(evaluated.status == 0, "\(evaluated.error)")
        let object = try JSONSerialization.jsonObject(with: Data(evaluated.output.utf8)) as? [String: Any]
        let accuracy = object?["accuracy"] as? Double ?? -1
        // Two epochs on 250 digits: far above chance (0.1), and what training recorded.
        #expect(accuracy > 0.3, "\(evaluated.output)")
        let (_, metadata) = try DigitClassifierFile.load(weights)
        #expect(abs((Double(metadata["eval.test_accuracy"] ?? "") ?? -1) - accuracy) < 1e-4)
        #expect(metadata["checksum.sha256"] != nil)
        #expect(metadata["train.command"]?.contains(folder.path) == false)

        // A flipped data byte: refused with the checksum's reason.
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: weights)))
        bytes[bytes.count - 100] ^= 0x40
        let damaged = folder.appendingPathComponent("damaged.safetensors").path
        try Data(bytes).write(to: URL(fileURLWithPath: damaged))
        let refused = try runner.run(["classifier", "evaluate", "--weights", damaged, "--data-dir", folder.path])
        #expect(refused.status != 0)
        #expect(refused.error.contains("damaged"), "\(refused.error)")

        // A jigsaw network's file is not a classifier.
        let jigsaw = runner.repository.appendingPathComponent("Models/mnist-2x2.safetensors").path
        let foreign = try runner.run(["classifier", "evaluate", "--weights", jigsaw, "--data-dir", folder.path])
        #expect(foreign.status != 0)
        #expect(foreign.error.contains("architecture"), "\(foreign.error)")
    }

    @Test(arguments: [
        (["classifier", "train", "--data-dir", "/nonexistent", "-o", "/tmp/x.safetensors"], "does not exist"),
        (["classifier", "train", "--data-dir", "/tmp", "--epochs", "0", "-o", "/tmp/x.safetensors"], "--epochs"),
        (["classifier", "evaluate", "--weights", "/nonexistent.safetensors", "--data-dir", "/tmp"], "no weights file"),
    ])
    func badFlagsAreRefused(arguments: [String], word: String) throws {
        let result = try runner.run(arguments)
        #expect(result.status == 64, "\(arguments)")
        #expect(result.error.contains(word), "\(arguments): \(result.error)")
    }
}

/// The shipped classifier (`Models/classifiers/mnist-classifier.safetensors`) on the 300 fixture
/// test digits, scored against their MNIST labels.
@Suite struct ShippedClassifierTests {
    @Test func shippedClassifierReadsTheFixtureDigits() throws {
        let repository = TrainCommandTests().repository
        let (classifier, metadata) = try DigitClassifierFile.load(
            repository.appendingPathComponent("Models/classifiers/mnist-classifier.safetensors").path)
        #expect((Double(metadata["eval.test_accuracy"] ?? "") ?? 0) >= 0.99)
        let digits = try ImageDataset.mnist(directory: fixturesDirectory, split: .test)
        let accuracy = DigitClassifierFile.accuracy(of: classifier, images: digits)
        #expect(accuracy >= 0.98, "accuracy \(accuracy) on \(digits.count) fixture digits")
        // Digits moved 2 px right and down (the classifier was trained with such shifts).
        let moved = DigitClassifierFile.accuracy(of: classifier, images: digits.shifted(x: 2, y: 2))
        #expect(moved >= 0.95, "accuracy \(moved) on the moved digits")
    }
}
