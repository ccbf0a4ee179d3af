import Foundation

extension DatasetKind {
    /// The folder used when none is given: Debian's for Fashion-MNIST, none otherwise.
    public var defaultDirectory: String? {
        self == .fashionMNIST ? ImageDataset.fashionMNISTDirectory : nil
    }

    /// Fixed evaluation crops per photo of a photo split.
    public static let testCropsPerPhoto = 64

    /// The folder of a photo split (`DIR/train`, `DIR/test`).
    public func photoFolder(_ directory: String, split: DatasetSplit) -> String {
        (directory as NSString).appendingPathComponent(split == .train ? "train" : "test")
    }

    /// A photo split's crop sampler for training: `side × side` RGB crops at random positions,
    /// scales and flips.
    /// - Throws: `DatasetError` naming the folder or file that is missing or malformed.
    public func photoSampler(directory: String, side: Int) throws(DatasetError) -> PhotoCropSampler {
        PhotoCropSampler(photos: try PhotoCollection.load(directory: photoFolder(directory, split: .train)), side: side)
    }

    /// Loads one split.
    ///
    /// An image folder holds `train/` and `test/` subfolders (or, without them, one set of images used
    /// for both); its PNGs are converted to `channels` and resized to fill `imageSize × imageSize`.
    /// - Throws: `DatasetError` naming the file or folder that is missing or malformed.
    /// Photos are cut as ``PhotoCollection/testCrops(side:perPhoto:aspect:grid:)`` does, `photoAspect`
    /// giving the crops' width : height before they are squeezed into the square and `photoGrid`
    /// the grid whose cells are resized one by one (as the service does).
    public func load(directory: String, split: DatasetSplit, limit: Int? = nil, channels: Int = 1,
                     imageSize: Int = 28, photoAspect: Double = 1, photoGrid: Int? = nil) throws(DatasetError) -> ImageDataset {
        switch self {
        case .photos:
            let photos = try PhotoCollection.load(directory: photoFolder(directory, split: split))
            let crops = photos.testCrops(side: imageSize, perPhoto: Self.testCropsPerPhoto, aspect: photoAspect, grid: photoGrid)
            guard let limit, limit < crops.count else { return crops }
            return ImageDataset.slice(crops, 0..<limit)
        case .mnist, .fashionMNIST:
            return try ImageDataset.mnist(directory: directory, split: split, limit: limit)
        case .folder:
            let sub = (directory as NSString).appendingPathComponent(split == .train ? "train" : "test")
            var isDirectory: ObjCBool = false
            let folder = FileManager.default.fileExists(atPath: sub, isDirectory: &isDirectory) && isDirectory.boolValue
                ? sub : directory
            return try ImageDataset.imageFolder(directory: folder, channels: channels, height: imageSize,
                                                width: imageSize, limit: limit)
        }
    }
}
