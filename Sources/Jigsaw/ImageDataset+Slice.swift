extension ImageDataset {
    /// The images in `range` (for example a validation set held out from the end of a training split).
    public static func slice(_ dataset: ImageDataset, _ range: Range<Int>) -> ImageDataset {
        precondition(range.lowerBound >= 0 && range.upperBound <= dataset.count, "slice \(range) out of 0..<\(dataset.count)")
        let size = dataset.imageSize
        return ImageDataset(count: range.count, channels: dataset.channels, height: dataset.height, width: dataset.width,
                            pixels: Array(dataset.pixels[(range.lowerBound * size)..<(range.upperBound * size)]),
                            labels: dataset.labels.map { Array($0[range]) },
                            sources: dataset.sources.isEmpty ? [] : Array(dataset.sources[range]))
    }
}
