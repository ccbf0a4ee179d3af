import Foundation
import TensorKit

extension ImageDataset {
    /// Loads every PNG file (`.png`, any case) directly inside a directory, in sorted name order,
    /// as a dataset of `channels × height × width` images.
    ///
    /// Each image is converted to `channels` (1: BT.601 luma; 3: RGB; alpha composited onto
    /// `background`), scaled so it covers the target size with its aspect ratio kept, and
    /// center-cropped (`Image.resizedToFill`). `sources` holds the file names.
    /// - Parameters:
    ///   - limit: load only the first `limit` files.
    ///   - maximumSamples: the per-image decode limit (see `PNG.decode`).
    /// - Throws: `.unreadableDirectory`, `.noImages`, `.unreadable`, or `.image` naming the file.
    public static func imageFolder(
        directory: String, channels: Int, height: Int, width: Int, limit: Int? = nil,
        background: AlphaBackground = .black, maximumSamples: Int = PNG.defaultMaximumSamples
    ) throws(DatasetError) -> ImageDataset {
        precondition(channels == 1 || channels == 3, "an image folder dataset has 1 or 3 channels")
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw .unreadableDirectory(directory: directory, message: (error as NSError).localizedDescription)
        }
        var files = names.filter { $0.lowercased().hasSuffix(".png") }.sorted()
        if let limit { files = Array(files.prefix(max(0, limit))) }
        guard !files.isEmpty else { throw .noImages(directory: directory) }
        let imageSize = channels * height * width
        var pixels = [UInt8](repeating: 0, count: files.count * imageSize)
        let plane = height * width
        for (index, name) in files.enumerated() {
            let path = directory.hasSuffix("/") ? directory + name : directory + "/" + name
            let bytes: [UInt8]
            switch FileBytes.read(path) {
            case .success(let data): bytes = data
            case .failure(let error): throw .unreadable(file: path, message: error.message)
            }
            let decoded: Image
            do { decoded = try PNG.decode(bytes, maximumSamples: maximumSamples) } catch { throw .image(file: path, error) }
            let image = decoded.converted(toChannels: channels, background: background)
                .resizedToFill(width: width, height: height)
            let base = index * imageSize
            for c in 0..<channels {
                for p in 0..<plane { pixels[base + c * plane + p] = image.pixels[p * channels + c] }
            }
        }
        return ImageDataset(count: files.count, channels: channels, height: height, width: width,
                            pixels: pixels, sources: files)
    }
}
