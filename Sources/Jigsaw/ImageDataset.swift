import NeuralNet
import TensorKit

/// Errors from loading a dataset; each names the file or directory involved.
public enum DatasetError: Error, Equatable, Sendable, CustomStringConvertible {
    /// An IDX file was unreadable or malformed.
    case idx(IDXError)
    /// A directory holds no IDX image file for the split.
    case filesNotFound(directory: String, split: DatasetSplit)
    /// A directory holds several IDX image files for the split.
    case ambiguousFiles(directory: String, candidates: [String])
    /// The labels file that pairs with an images file does not exist.
    case labelsNotFound(imagesFile: String, tried: [String])
    /// An IDX file has the wrong element type or rank for its role.
    case unexpectedLayout(file: String, dataType: UInt8, dimensions: [Int], expected: String)
    /// The images and labels files disagree on the number of items.
    case countMismatch(imagesFile: String, images: Int, labelsFile: String, labels: Int)
    /// A label outside `0..<classes`.
    case labelOutOfRange(file: String, index: Int, label: Int)
    /// A directory could not be listed.
    case unreadableDirectory(directory: String, message: String)
    /// A file could not be read.
    case unreadable(file: String, message: String)
    /// An image folder holds no PNG files.
    case noImages(directory: String)
    /// A PNG file in an image folder could not be decoded.
    case image(file: String, PNGError)
    /// An image file (PNG, JPEG, WebP) in a photo folder could not be decoded.
    case decoding(file: String, ImageDecodingError)

    public var description: String {
        switch self {
        case .idx(let error): return error.description
        case .decoding(let file, let error): return "\(file): \(error)"
        case .filesNotFound(let directory, let split):
            return "\(directory): no \(split.rawValue) images file (like \(split == .train ? "train" : "t10k")-images-idx3-ubyte[.gz])"
        case .ambiguousFiles(let directory, let candidates):
            return "\(directory): several candidate images files: \(candidates.joined(separator: ", "))"
        case .labelsNotFound(let images, let tried):
            return "\(images): no labels file next to it (tried \(tried.joined(separator: ", ")))"
        case .unexpectedLayout(let file, let dataType, let dimensions, let expected):
            return "\(file): IDX type 0x\(String(dataType, radix: 16)) with dimensions \(dimensions), expected \(expected)"
        case .countMismatch(let imagesFile, let images, let labelsFile, let labels):
            return "\(imagesFile) holds \(images) images but \(labelsFile) holds \(labels) labels"
        case .labelOutOfRange(let file, let index, let label): return "\(file): label \(label) of item \(index) is out of range"
        case .unreadableDirectory(let directory, let message): return "\(directory): \(message)"
        case .unreadable(let file, let message): return "\(file): \(message)"
        case .noImages(let directory): return "\(directory): no PNG images"
        case .image(let file, let error): return "\(file): \(error)"
        }
    }
}

/// Which part of a dataset to load.
public enum DatasetSplit: String, Sendable, CaseIterable {
    case train
    case test
}

/// A set of same-sized 8-bit images, optionally labelled, stored compactly.
///
/// `pixels` is `[count, channels, height, width]` row-major (planar channels, NCHW like the
/// tensors); `tensor(_:)` converts a range to float.
public struct ImageDataset: Equatable, Sendable {
    public var count: Int
    public var channels: Int
    public var height: Int
    public var width: Int
    /// `count · channels · height · width` samples, NCHW.
    public var pixels: [UInt8]
    /// Class labels, one per image, when the dataset has them.
    public var labels: [Int]?
    /// Where each image came from (file names for image folders; empty for IDX datasets).
    public var sources: [String]

    public init(count: Int, channels: Int, height: Int, width: Int, pixels: [UInt8],
                labels: [Int]? = nil, sources: [String] = []) {
        precondition(count >= 0 && channels > 0 && height > 0 && width > 0, "invalid dataset geometry")
        precondition(pixels.count == count * channels * height * width, "pixel count does not match the geometry")
        precondition(labels.map { $0.count == count } ?? true, "label count does not match the image count")
        precondition(sources.isEmpty || sources.count == count, "source count does not match the image count")
        self.count = count
        self.channels = channels
        self.height = height
        self.width = width
        self.pixels = pixels
        self.labels = labels
        self.sources = sources
    }

    /// Samples per image.
    public var imageSize: Int { channels * height * width }

    /// Images `range` as a float tensor `[range.count, C, H, W]` with values `pixel / 255`.
    public func tensor(_ range: Range<Int>? = nil) -> Tensor {
        let range = range ?? 0..<count
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "range \(range) outside 0..<\(count)")
        var result = Tensor(shape: [range.count, channels, height, width])
        let offset = range.lowerBound * imageSize
        let scale: Float = 1 / 255
        pixels.withUnsafeBufferPointer { source in
            result.withUnsafeMutableBufferPointer { out in
                for i in 0..<out.count { out[i] = Float(source[offset + i]) * scale }
            }
        }
        return result
    }

    /// The images at `indices` (in that order, repeats allowed) as `[indices.count, C, H, W]` with
    /// values `pixel / 255`.
    public func tensor(indices: [Int]) -> Tensor {
        let size = imageSize
        var result = Tensor(shape: [indices.count, channels, height, width])
        let scale: Float = 1 / 255
        pixels.withUnsafeBufferPointer { source in
            result.withUnsafeMutableBufferPointer { out in
                for (row, index) in indices.enumerated() {
                    precondition(index >= 0 && index < count, "image \(index) outside 0..<\(count)")
                    for i in 0..<size { out[row * size + i] = Float(source[index * size + i]) * scale }
                }
            }
        }
        return result
    }

    /// Image `index` as an interleaved `Image` (1 or 3 channels).
    public func image(at index: Int) -> Image {
        precondition(index >= 0 && index < count, "image \(index) outside 0..<\(count)")
        precondition(channels == 1 || channels == 3 || channels == 4, "no Image has \(channels) channels")
        let plane = height * width
        let base = index * imageSize
        var interleaved = [UInt8](repeating: 0, count: imageSize)
        for c in 0..<channels {
            for p in 0..<plane { interleaved[p * channels + c] = pixels[base + c * plane + p] }
        }
        return Image(width: width, height: height, channels: channels, pixels: interleaved)
    }

    /// The first `limit` images (all of them when `limit` is nil or larger than `count`).
    public func prefix(_ limit: Int?) -> ImageDataset {
        guard let limit, limit < count else { return self }
        precondition(limit >= 0, "negative limit")
        return ImageDataset(count: limit, channels: channels, height: height, width: width,
                            pixels: Array(pixels[0..<(limit * imageSize)]),
                            labels: labels.map { Array($0[0..<limit]) },
                            sources: sources.isEmpty ? [] : Array(sources[0..<limit]))
    }
}

extension ImageDataset {
    /// - Throws: `JigsawTrainingError.datasetMismatch` when the images are not the network's size
    ///   and channel count.
    func checkFits(_ configuration: JigsawNetworkConfiguration) throws(JigsawTrainingError) {
        let c = configuration
        guard channels == c.channels, height == c.imageSize, width == c.imageSize else {
            throw .datasetMismatch("images are \(channels)×\(height)×\(width), the network expects "
                                   + "\(c.channels)×\(c.imageSize)×\(c.imageSize)")
        }
    }

    /// - Throws: `JigsawTrainingError.datasetMismatch` unless every image has a label in `0..<classes`
    ///   (the score head or class it is judged against).
    func checkLabels(classes: Int) throws(JigsawTrainingError) {
        guard let labels, labels.count == count else {
            throw .datasetMismatch("a network with \(classes) score heads needs a class label per image")
        }
        if let bad = labels.first(where: { !(0..<classes).contains($0) }) {
            throw .datasetMismatch("label \(bad) has no score head (0..<\(classes))")
        }
    }
}
