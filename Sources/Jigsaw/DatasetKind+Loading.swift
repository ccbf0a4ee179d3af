import Foundation

extension DatasetKind {
    /// The folder used when none is given: Debian's for Fashion-MNIST, none otherwise.
    public var defaultDirectory: String? {
        self == .fashionMNIST ? ImageDataset.fashionMNISTDirectory : nil
    }

    /// Loads one split.
    ///
    /// An image folder holds `train/` and `test/` subfolders (or, without them, one set of images used
    /// for both); its PNGs are converted to `channels` and resized to fill `imageSize × imageSize`.
    /// - Throws: `DatasetError` naming the file or folder that is missing or malformed.
    public func load(directory: String, split: DatasetSplit, limit: Int? = nil, channels: Int = 1,
                     imageSize: Int = 28) throws(DatasetError) -> ImageDataset {
        switch self {
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
