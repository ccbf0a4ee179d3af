import Foundation
import Jigsaw

/// The test images shipped for demo puzzles: one MNIST-layout dataset per subdirectory
/// (`samples/mnist/`, `samples/fashion-mnist/`), named after the subdirectory.
public struct SampleSet: Sendable {
    /// The datasets by name.
    public let datasets: [String: ImageDataset]

    /// Sample datasets given directly.
    public init(datasets: [String: ImageDataset]) {
        self.datasets = datasets
    }

    /// The side of the square photo samples (the largest photo model's image: 5 × 64 px).
    public static let photoSide = 320

    /// Loads every subdirectory of `directory` that holds a test split in IDX format
    /// (`*test*-images-idx3-ubyte.gz` and its labels), or else PNG, JPEG or WebP photos (centre
    /// crops of ``photoSide`` px, in file-name order; no labels); other entries are ignored.
    ///
    /// - Throws: `DatasetError` when a subdirectory has IDX files or photos that do not load.
    public init(directory: String) throws {
        var datasets: [String: ImageDataset] = [:]
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for name in names.sorted() {
            let path = (directory as NSString).appendingPathComponent(name)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else { continue }
            if (try? ImageDataset.mnistFiles(directory: path, split: .test)) != nil {
                datasets[name] = try ImageDataset.mnist(directory: path, split: .test)
                continue
            }
            let photos = try PhotoCollection.load(directory: path)
            if !photos.images.isEmpty {
                datasets[name] = photos.testCrops(side: Self.photoSide, perPhoto: 1)
            }
        }
        self.datasets = datasets
    }

    /// The dataset a request means: the named one, else the one the model was evaluated on
    /// (`eval.dataset`), else `mnist`, else the first by name.
    func dataset(named name: String?, for model: ServiceModel) throws(ServiceError) -> (name: String, dataset: ImageDataset) {
        if let name {
            guard let dataset = datasets[name] else {
                throw .sampleNotFound("no sample dataset '\(ServiceError.excerpt(name))'; available: \(datasets.keys.sorted().joined(separator: ", "))")
            }
            return (name, dataset)
        }
        for candidate in [model.metadata["eval.dataset"], model.metadata["train.dataset"], "mnist"].compactMap({ $0 }) {
            if let dataset = datasets[candidate] { return (candidate, dataset) }
        }
        guard let first = datasets.keys.sorted().first, let dataset = datasets[first] else {
            throw .sampleNotFound("no sample images are installed")
        }
        return (first, dataset)
    }
}
