import Dispatch
import Foundation
import TensorKit

/// A folder of photographs kept in memory at their own sizes (8-bit RGB), the source of
/// `PhotoCropSampler`'s training crops and of fixed evaluation crops (`testCrops`).
public struct PhotoCollection: Sendable {
    /// The photos, RGB (alpha composited onto black, gray expanded).
    public var images: [Image]
    /// Each photo's path relative to the folder.
    public var sources: [String]
    /// Image files skipped because their format is not decoded here, by format name.
    public var skipped: [String: Int]

    public init(images: [Image], sources: [String], skipped: [String: Int] = [:]) {
        precondition(images.count == sources.count, "one source name per image")
        self.images = images
        self.sources = sources
        self.skipped = skipped
    }

    /// Splits off `count` photos for validation, chosen by a hash of their source names (FNV-1a,
    /// smallest first), so the choice depends on the names only and a validation photo gives no
    /// crops to training: `(training, validation)`.
    public func holdingOut(_ count: Int) -> (training: PhotoCollection, validation: PhotoCollection) {
        precondition(count >= 0 && count < images.count, "hold out fewer photos than the \(images.count) there are")
        func fnv(_ text: String) -> UInt64 {
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
            return hash
        }
        let held = Set(sources.indices.sorted { (fnv(sources[$0]), sources[$0]) < (fnv(sources[$1]), sources[$1]) }.prefix(count))
        func subset(_ keep: (Int) -> Bool) -> PhotoCollection {
            let indices = images.indices.filter(keep)
            return PhotoCollection(images: indices.map { images[$0] }, sources: indices.map { sources[$0] })
        }
        return (subset { !held.contains($0) }, subset { held.contains($0) })
    }

    /// What `decodeImageFile` made of a file.
    public enum DecodedFile: Sendable {
        case image(Image)
        /// A recognised format without a decoder here (named `"jpeg"`, `"webp"`).
        case unsupported(format: String)
    }

    /// The file formats recognised by their leading bytes.
    static func format(of bytes: [UInt8]) -> String? {
        if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]) { return "png" }
        if bytes.starts(with: [0xFF, 0xD8, 0xFF]) { return "jpeg" }
        if bytes.count >= 12 && bytes.starts(with: Array("RIFF".utf8)) && Array(bytes[8..<12]) == Array("WEBP".utf8) {
            return "webp"
        }
        return nil
    }

    /// Decodes one image file by its content: PNG, JPEG and WebP through ``ImageDecoder``. Returns
    /// `nil` for files of no recognised image format.
    /// - Throws: `.unreadable` or `.decoding` naming the file.
    public static func decodeImageFile(
        path: String, maximumSamples: Int = PNG.defaultMaximumSamples
    ) throws(DatasetError) -> DecodedFile? {
        let bytes: [UInt8]
        switch FileBytes.read(path) {
        case .success(let data): bytes = data
        case .failure(let error): throw .unreadable(file: path, message: error.message)
        }
        switch format(of: bytes) {
        case "png", "jpeg", "webp":
            do throws(ImageDecodingError) {
                return .image(try ImageDecoder.decode(bytes, maximumSamples: maximumSamples))
            } catch {
                throw .decoding(file: path, error)
            }
        case let other?:
            return .unsupported(format: other)
        case nil:
            return nil
        }
    }

    /// Every `.png`, `.jpg`, `.jpeg` and `.webp` file (any case) under `directory`, recursively, in
    /// sorted path order, decoded by ``ImageDecoder``.
    /// - Parameter limit: keep only the first `limit` photos.
    /// - Throws: `.unreadableDirectory`, `.noImages`, `.unreadable`, `.image`.
    public static func load(
        directory: String, limit: Int? = nil, maximumSamples: Int = PNG.defaultMaximumSamples
    ) throws(DatasetError) -> PhotoCollection {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue,
              let enumerator = FileManager.default.enumerator(atPath: directory) else {
            throw .unreadableDirectory(directory: directory, message: "not a readable directory")
        }
        let extensions = [".png", ".jpg", ".jpeg", ".webp"]
        var files: [String] = []
        while let relative = enumerator.nextObject() as? String {
            let lower = relative.lowercased()
            if extensions.contains(where: { lower.hasSuffix($0) }) { files.append(relative) }
        }
        files.sort()
        var images: [Image] = [], sources: [String] = [], skipped: [String: Int] = [:]
        for relative in files {
            if let limit, images.count >= limit { break }
            let path = directory.hasSuffix("/") ? directory + relative : directory + "/" + relative
            switch try decodeImageFile(path: path, maximumSamples: maximumSamples) {
            case .image(let image)?:
                images.append(image.channels == 3 ? image : image.converted(toChannels: 3))
                sources.append(relative)
            case .unsupported(let format)?:
                skipped[format, default: 0] += 1
            case nil:
                skipped["unknown", default: 0] += 1
            }
        }
        for (format, count) in skipped.sorted(by: { $0.key < $1.key }) {
            FileHandle.standardError.write(Data("warning: \(directory): skipped \(count) \(format) file(s) (not a PNG, JPEG or WebP image)\n".utf8))
        }
        guard !images.isEmpty else { throw .noImages(directory: directory) }
        return PhotoCollection(images: images, sources: sources, skipped: skipped)
    }

    /// Fixed evaluation crops, `perPhoto` of each photo (photo-major), resized (area filter;
    /// bilinear when enlarging) to `side × side`. Crop 0 is the central square of side `min(W, H)`;
    /// crop `k ≥ 1` has side `scale · min(W, H)` with `scale` cycling through 1, 0.75, 0.6 and its
    /// top-left corner at fractions `(frac(k · 0.618034), frac(0.5 + k · 0.381966))` of the free
    /// range along x and y. `sources` are the photo names.
    ///
    /// With `aspect ≠ 1` every crop is a `width : height = aspect` rectangle instead (the largest
    /// that fits, times the scale) squeezed into the `side × side` square — what the service does
    /// to a non-square photo, whose pieces are resized to the model's square piece side.
    ///
    /// With `grid`, each crop is cut into that grid before resizing and each cell resized on its own,
    /// as the service does with an uploaded photo.
    public func testCrops(side: Int, perPhoto: Int = 1, aspect: Double = 1, grid: Int? = nil) -> ImageDataset {
        precondition(perPhoto >= 1, "at least one crop per photo")
        precondition(aspect > 0 && aspect.isFinite, "the aspect ratio must be positive")
        var crops: [Image] = [], names: [String] = []
        for (image, name) in zip(images, sources) {
            // The largest width × height rectangle of this aspect inside the photo.
            let fullWidth = min(Double(image.width), Double(image.height) * aspect)
            let fullHeight = fullWidth / aspect
            for k in 0..<perPhoto {
                let scale = k == 0 ? 1.0 : [1.0, 0.75, 0.6][(k - 1) % 3]
                let w = min(image.width, max(1, Int((scale * fullWidth).rounded())))
                let h = min(image.height, max(1, Int((scale * fullHeight).rounded())))
                let fx = k == 0 ? 0.5 : (Double(k) * 0.618034).truncatingRemainder(dividingBy: 1)
                let fy = k == 0 ? 0.5 : (0.5 + Double(k) * 0.381966).truncatingRemainder(dividingBy: 1)
                let x0 = k == 0 ? (image.width - w) / 2 : Int((fx * Double(image.width - w)).rounded())
                let y0 = k == 0 ? (image.height - h) / 2 : Int((fy * Double(image.height - h)).rounded())
                let crop = image.cropped(x: x0, y: y0, width: w, height: h)
                crops.append(PhotoCropSampler.resize(crop, side: side, grid: grid))
                names.append(name)
            }
        }
        return ImageDataset(photos: crops, side: side, sources: names)
    }
}

/// Random square crops of photos for training: scale, position and horizontal flip drawn from a
/// seeded generator, resized to `side × side` RGB.
///
/// A crop's side is `u · min(W, H)` with `u` uniform in `scales` (rounded, at least 1 px), its
/// top-left corner uniform over the positions that keep it inside the photo, and it is mirrored
/// left-right with probability `flipProbability`. The crop is resized with the area filter (the
/// bilinear one when enlarging). Everything is a function of the seed.
public struct PhotoCropSampler: Sendable {
    public var photos: PhotoCollection
    public var side: Int
    public var scales: ClosedRange<Double>
    public var flipProbability: Double
    /// The largest width : height (or height : width) of a crop before it is squeezed into the
    /// square; 1 keeps crops square. The ratio is drawn log-uniformly in `[1/A, A]`.
    public var maximumAspect: Double = 1
    /// When set, every crop is cut into this grid and each cell resized on its own (``resize(_:side:grid:)``).
    public var grid: Int?

    public init(photos: PhotoCollection, side: Int, scales: ClosedRange<Double> = 0.5...1.0, flipProbability: Double = 0.5) {
        precondition(side > 0, "crop side must be positive")
        precondition(scales.lowerBound > 0 && scales.upperBound <= 1, "crop scales are fractions of the shorter side in (0, 1]")
        precondition(!photos.images.isEmpty, "no photos to crop")
        self.photos = photos
        self.side = side
        self.scales = scales
        self.flipProbability = flipProbability
    }

    /// Where one crop of a photo lies: its top-left corner, side and mirroring.
    public struct CropPlacement: Sendable {
        public var photo: Int, x: Int, y: Int, width: Int, height: Int, mirrored: Bool
    }

    /// Draws a crop of photo `index` from `generator` (scale, then position, then flip).
    public func placement(photo index: Int, generator: inout SeededGenerator) -> CropPlacement {
        let image = photos.images[index]
        let shorter = min(image.width, image.height)
        let u = scales.lowerBound + (scales.upperBound - scales.lowerBound) * generator.nextUniformDouble()
        var (w, h) = (min(shorter, max(1, Int((u * Double(shorter)).rounded()))), 0)
        h = w
        if maximumAspect > 1 {
            // Same area as the square, stretched to the drawn aspect, then shrunk to fit.
            let logA = log(maximumAspect)
            let aspect = exp((2 * generator.nextUniformDouble() - 1) * logA)
            let area = Double(w * w)
            var width = (area * aspect).squareRoot(), height = (area / aspect).squareRoot()
            let fit = min(1, Double(image.width) / width, Double(image.height) / height)
            width *= fit; height *= fit
            (w, h) = (max(1, min(image.width, Int(width.rounded()))), max(1, min(image.height, Int(height.rounded()))))
        }
        let x0 = generator.nextInt(below: image.width - w + 1)
        let y0 = generator.nextInt(below: image.height - h + 1)
        let flip = generator.nextUniformDouble() < flipProbability
        return CropPlacement(photo: index, x: x0, y: y0, width: w, height: h, mirrored: flip)
    }

    func render(_ placement: CropPlacement) -> Image {
        let image = photos.images[placement.photo]
        return Self.resize(image.cropped(x: placement.x, y: placement.y, width: placement.width, height: placement.height,
                                         mirrored: placement.mirrored), side: side, grid: grid)
    }

    /// One crop of photo `index`, drawing from `generator`.
    public func crop(photo index: Int, generator: inout SeededGenerator) -> Image {
        render(placement(photo: index, generator: &generator))
    }

    /// `count` crops, photo indices uniform with replacement, all drawn from `SeededGenerator(seed:)`
    /// in order; the crops are then cut and resized in parallel (the same images on any core count).
    public func batch(count: Int, seed: UInt64) -> ImageDataset {
        var generator = SeededGenerator(seed: seed)
        var placements: [CropPlacement] = []
        placements.reserveCapacity(count)
        for _ in 0..<count {
            let index = generator.nextInt(below: photos.images.count)
            placements.append(placement(photo: index, generator: &generator))
        }
        let crops = UnsafeMutableBufferPointer<Image>.allocate(capacity: count)
        crops.initialize(repeating: Image(width: 0, height: 0, channels: 3, pixels: []))
        defer { crops.deinitialize(); crops.deallocate() }
        nonisolated(unsafe) let output = crops
        let (sampler, drawn) = (self, placements)
        DispatchQueue.concurrentPerform(iterations: count) { k in output[k] = sampler.render(drawn[k]) }
        return ImageDataset(photos: Array(crops), side: side, sources: placements.map { photos.sources[$0.photo] })
    }

    /// The crop as RGB `side × side`; with a grid, cut first and each cell resized on its own to
    /// `side / grid` (then joined), exactly as the service prepares the pieces of an uploaded
    /// photo, so no pixel is shared across a cut and training sees the seams a real cut leaves.
    static func resize(_ image: Image, side: Int, grid: Int? = nil) -> Image {
        let rgb = image.channels == 3 ? image : image.converted(toChannels: 3)
        guard let grid, grid > 1, side % grid == 0, rgb.width >= grid, rgb.height >= grid else {
            return rgb.resized(width: side, height: side, filter: rgb.width >= side && rgb.height >= side ? .area : .bilinear)
        }
        let piece = side / grid
        return Image.tiled(rgb.cells(grid: grid).map { $0.fitted(width: piece, height: piece) }, grid: grid)
    }
}

extension Image {
    /// The `side × side` square with top-left corner `(x, y)`, mirrored left-right when `mirrored`.
    func cropped(x x0: Int, y y0: Int, side s: Int, mirrored: Bool = false) -> Image {
        cropped(x: x0, y: y0, width: s, height: s, mirrored: mirrored)
    }

    /// The `w × h` rectangle with top-left corner `(x, y)`, mirrored left-right when `mirrored`.
    func cropped(x x0: Int, y y0: Int, width w: Int, height h: Int, mirrored: Bool = false) -> Image {
        precondition(x0 >= 0 && y0 >= 0 && x0 + w <= width && y0 + h <= height, "crop outside the image")
        let c = channels
        var output = [UInt8](repeating: 0, count: w * h * c)
        for y in 0..<h {
            for x in 0..<w {
                let sx = mirrored ? x0 + w - 1 - x : x0 + x
                let from = ((y0 + y) * width + sx) * c, to = (y * w + x) * c
                for k in 0..<c { output[to + k] = pixels[from + k] }
            }
        }
        return Image(width: w, height: h, channels: c, pixels: output)
    }
}

extension ImageDataset {
    /// A dataset of `side × side` RGB images (planar, as every `ImageDataset`).
    init(photos: [Image], side: Int, sources: [String]) {
        let plane = side * side
        var pixels = [UInt8](repeating: 0, count: photos.count * 3 * plane)
        for (i, image) in photos.enumerated() {
            precondition(image.width == side && image.height == side && image.channels == 3, "crop of the wrong size")
            let base = i * 3 * plane
            for p in 0..<plane { for c in 0..<3 { pixels[base + c * plane + p] = image.pixels[p * 3 + c] } }
        }
        self.init(count: photos.count, channels: 3, height: side, width: side, pixels: pixels, sources: sources)
    }
}
