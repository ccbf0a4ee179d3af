import Foundation

extension ImageDataset {
    /// Where Debian's `dataset-fashion-mnist` package installs Fashion-MNIST.
    public static let fashionMNISTDirectory = "/usr/share/datasets/fashion-mnist"

    /// Finds the IDX images and labels files of a split in a directory.
    ///
    /// An images file is one whose name, without a `.gz` suffix, ends in `images-idx3-ubyte` or
    /// `images.idx3-ubyte` and whose name, split at `-`, `_` and `.`, contains the split's word:
    /// `train` for the training split, `t10k` or `test` for the test split. That covers the
    /// original MNIST and Fashion-MNIST names (`t10k-images-idx3-ubyte.gz`), Debian's package, the
    /// dotted variant (`t10k-images.idx3-ubyte`) and prefixed fixtures
    /// (`mnist-test-300-images-idx3-ubyte.gz`). When both a raw and a gzipped copy exist the raw one
    /// wins. The labels file has the same name with `images-idx3` replaced by `labels-idx1`, raw or
    /// gzipped.
    /// - Throws: `.unreadableDirectory`, `.filesNotFound`, `.ambiguousFiles`, `.labelsNotFound`.
    public static func mnistFiles(directory: String, split: DatasetSplit) throws(DatasetError) -> (images: String, labels: String) {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw .unreadableDirectory(directory: directory, message: (error as NSError).localizedDescription)
        }
        let words: Set<String> = split == .train ? ["train"] : ["t10k", "test"]
        var candidates: [String: String] = [:] // uncompressed name → chosen file name
        for name in names {
            let bare = name.hasSuffix(".gz") ? String(name.dropLast(3)) : name
            guard let suffix = ["images-idx3-ubyte", "images.idx3-ubyte"].first(where: { bare.hasSuffix($0) }) else { continue }
            let stem = bare.dropLast(suffix.count)
            let parts = stem.split(whereSeparator: { $0 == "-" || $0 == "_" || $0 == "." }).map(String.init)
            guard parts.contains(where: words.contains) else { continue }
            if candidates[bare] == nil || name == bare { candidates[bare] = name }
        }
        guard !candidates.isEmpty else { throw .filesNotFound(directory: directory, split: split) }
        guard candidates.count == 1, let (bare, imagesName) = candidates.first else {
            throw .ambiguousFiles(directory: directory, candidates: candidates.values.sorted())
        }
        let labelsBare = bare.replacingOccurrences(of: "images-idx3-ubyte", with: "labels-idx1-ubyte")
            .replacingOccurrences(of: "images.idx3-ubyte", with: "labels.idx1-ubyte")
        let join = { (name: String) in directory.hasSuffix("/") ? directory + name : directory + "/" + name }
        let tried = [labelsBare, labelsBare + ".gz"]
        guard let labelsName = tried.first(where: { names.contains($0) }) else {
            throw .labelsNotFound(imagesFile: join(imagesName), tried: tried)
        }
        return (join(imagesName), join(labelsName))
    }

    /// Loads a split of MNIST (or any dataset in MNIST's IDX layout) from a directory.
    ///
    /// Shape `[N, 1, rows, cols]` (28 × 28 for MNIST), labels 0…9.
    /// - Parameter limit: keep only the first `limit` images (the files are still validated whole).
    /// - Throws: `DatasetError` naming the file or directory.
    public static func mnist(directory: String, split: DatasetSplit, limit: Int? = nil) throws(DatasetError) -> ImageDataset {
        let files = try mnistFiles(directory: directory, split: split)
        return try mnist(imagesFile: files.images, labelsFile: files.labels, limit: limit)
    }

    /// Loads Fashion-MNIST, by default from Debian's `dataset-fashion-mnist` package; the same
    /// layout and file names as MNIST.
    public static func fashionMNIST(
        directory: String = fashionMNISTDirectory, split: DatasetSplit, limit: Int? = nil
    ) throws(DatasetError) -> ImageDataset {
        try mnist(directory: directory, split: split, limit: limit)
    }

    /// Loads an MNIST-layout images file (IDX `ubyte`, 3 dimensions) and labels file (IDX `ubyte`,
    /// 1 dimension, values 0…9), raw or gzipped.
    /// - Throws: `.idx` for malformed files, `.unexpectedLayout`, `.countMismatch`, `.labelOutOfRange`.
    public static func mnist(imagesFile: String, labelsFile: String, limit: Int? = nil) throws(DatasetError) -> ImageDataset {
        let images: IDXFile, labels: IDXFile
        do {
            images = try IDXFile(contentsOfFile: imagesFile)
            labels = try IDXFile(contentsOfFile: labelsFile)
        } catch {
            throw .idx(error)
        }
        guard images.dataType == .uint8, images.dimensions.count == 3,
              images.dimensions[1] > 0, images.dimensions[2] > 0 else {
            throw .unexpectedLayout(file: imagesFile, dataType: images.dataType.rawValue,
                                    dimensions: images.dimensions, expected: "unsigned bytes [N, rows, columns]")
        }
        guard labels.dataType == .uint8, labels.dimensions.count == 1 else {
            throw .unexpectedLayout(file: labelsFile, dataType: labels.dataType.rawValue,
                                    dimensions: labels.dimensions, expected: "unsigned bytes [N]")
        }
        guard images.dimensions[0] == labels.dimensions[0] else {
            throw .countMismatch(imagesFile: imagesFile, images: images.dimensions[0],
                                 labelsFile: labelsFile, labels: labels.dimensions[0])
        }
        if let index = labels.payload.firstIndex(where: { $0 > 9 }) {
            throw .labelOutOfRange(file: labelsFile, index: index, label: Int(labels.payload[index]))
        }
        let full = ImageDataset(count: images.dimensions[0], channels: 1,
                                height: images.dimensions[1], width: images.dimensions[2],
                                pixels: images.payload, labels: labels.payload.map(Int.init))
        return full.prefix(limit)
    }
}
