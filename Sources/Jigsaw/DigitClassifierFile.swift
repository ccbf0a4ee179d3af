import NeuralNet
import TensorKit

/// Reading and writing `DigitClassifier` weights files (safetensors with the configuration in the
/// metadata and the data's checksum).
public enum DigitClassifierFile {
    /// A classifier with the weights of `path`.
    ///
    /// - Throws: `JigsawTrainingError.unreadableModelFile` for a malformed or damaged file (its
    ///   checksum does not match), `.nonFiniteWeight` for NaN or infinite weights, `NeuralNetError`
    ///   for another architecture or missing, unused or misshapen tensors.
    public static func load(_ path: String) throws -> (classifier: DigitClassifier, metadata: [String: String]) {
        let file: SafetensorsFile
        do {
            file = try SafetensorsFile(contentsOfFile: path)
        } catch {
            throw JigsawTrainingError.unreadableModelFile(path: path, error: error)
        }
        let tensors = try ModelFile.floatTensors(of: file, path: path)
        try ModelFile.checkWeights(tensors, source: path)
        let configuration = try DigitClassifierConfiguration(metadata: file.metadata)
        var generator = SeededGenerator(seed: 0)
        let classifier = DigitClassifier(configuration, generator: &generator)
        try classifier.load(tensors)
        return (classifier, file.metadata)
    }

    /// Writes the classifier's weights with its configuration and `metadata` atomically.
    public static func save(_ classifier: DigitClassifier, metadata: [String: String], to path: String) throws {
        try Safetensors.write(classifier.namedTensors(),
                              metadata: metadata.merging(classifier.configuration.metadata) { _, new in new },
                              toFile: path)
    }

    /// The share of `images` (`[N, 1, side, side]`) classified as `labels`, in batches of 500.
    public static func accuracy(of classifier: DigitClassifier, images: ImageDataset) -> Double {
        guard let labels = images.labels, images.count > 0 else { return 0 }
        var right = 0
        for start in stride(from: 0, to: images.count, by: 500) {
            let range = start..<Swift.min(start + 500, images.count)
            let predictions = classifier.predict(images.tensor(range))
            for (offset, prediction) in predictions.enumerated() where prediction == labels[range.lowerBound + offset] {
                right += 1
            }
        }
        return Double(right) / Double(images.count)
    }
}
