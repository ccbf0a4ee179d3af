/// The image container formats the decoder recognises by their first bytes.
///
/// PNG, JPEG and WebP decode; the others are recognised only so that they can be refused by name.
public enum ImageFormat: String, Equatable, Sendable, CaseIterable {
    case png = "PNG"
    case jpeg = "JPEG"
    case webp = "WebP"
    case gif = "GIF"
    case bmp = "BMP"
    case tiff = "TIFF"
    case heic = "HEIC"
    case avif = "AVIF"
    case jpegXL = "JPEG XL"

    /// The formats ``ImageDecoder`` decodes.
    public static let decodable: [ImageFormat] = [.png, .jpeg, .webp]

    /// Whether ``ImageDecoder`` decodes this format.
    public var isDecodable: Bool { Self.decodable.contains(self) }

    /// The format of `bytes` judged by its magic bytes, or `nil` when none matches.
    ///
    /// PNG: the 8-byte signature; JPEG: `FF D8 FF`; WebP: `RIFF····WEBP`; GIF: `GIF87a`/`GIF89a`;
    /// BMP: `BM` followed by a plausible header; TIFF: `II*\0` or `MM\0*`; HEIC/AVIF: an ISO-BMFF
    /// `ftyp` box with a HEIF brand; JPEG XL: a bare code stream (`FF 0A`) or its container box.
    public static func sniff<Bytes: RandomAccessCollection>(_ bytes: Bytes) -> ImageFormat? where Bytes.Element == UInt8 {
        let head = Array(bytes.prefix(32))
        func starts(_ prefix: [UInt8], at offset: Int = 0) -> Bool {
            head.count >= offset + prefix.count && Array(head[offset..<(offset + prefix.count)]) == prefix
        }
        func ascii(_ text: String) -> [UInt8] { Array(text.utf8) }
        if starts([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
        if starts([0xFF, 0xD8, 0xFF]) { return .jpeg }
        if starts(ascii("RIFF")) && starts(ascii("WEBP"), at: 8) { return .webp }
        if starts(ascii("GIF87a")) || starts(ascii("GIF89a")) { return .gif }
        if starts([0x49, 0x49, 0x2A, 0x00]) || starts([0x4D, 0x4D, 0x00, 0x2A]) { return .tiff }
        if starts([0xFF, 0x0A]) || starts([0, 0, 0, 0x0C, 0x4A, 0x58, 0x4C, 0x20, 0x0D, 0x0A, 0x87, 0x0A]) { return .jpegXL }
        if starts(ascii("ftyp"), at: 4), head.count >= 12 {
            let brand = String(decoding: head[8..<12], as: UTF8.self)
            if ["avif", "avis"].contains(brand) { return .avif }
            if ["heic", "heix", "hevc", "hevx", "heim", "heis", "hevm", "hevs", "mif1", "msf1"].contains(brand) { return .heic }
        }
        // "BM", then the header size of a BITMAPINFOHEADER family member at offset 14.
        if starts(ascii("BM")), head.count >= 18 {
            let infoSize = Int(head[14]) | Int(head[15]) << 8 | Int(head[16]) << 16 | Int(head[17]) << 24
            if [12, 40, 52, 56, 64, 108, 124].contains(infoSize) { return .bmp }
        }
        return nil
    }
}

/// Why image data could not become an ``Image``.
public enum ImageDecodingError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A recognised format the decoder does not read (GIF, BMP, TIFF, HEIC, …).
    case unsupportedFormat(ImageFormat)
    /// The magic bytes match no known image format.
    case unrecognisedFormat
    /// Even the smallest size the decoder can produce, `width × height × channels` samples,
    /// exceeds `limit`; nothing was allocated for pixels.
    case tooLarge(width: Int, height: Int, channels: Int, limit: Int)
    /// The data of this format ends before the image does.
    case truncated(ImageFormat)
    /// The data is damaged or inconsistent; the codec's message.
    case corrupt(ImageFormat, String)
    /// An animation, which has no single image to cut into pieces.
    case animated(ImageFormat)

    public var description: String {
        switch self {
        case .unsupportedFormat(let format):
            return "unsupported format: \(format.rawValue); send \(Self.decodableList)"
        case .unrecognisedFormat:
            return "the data is not a \(Self.decodableList) image"
        case .tooLarge(let width, let height, let channels, let limit):
            return "image of \(width)×\(height)×\(channels) samples exceeds the limit of \(limit) samples"
        case .truncated(let format):
            return "the \(format.rawValue) data is truncated"
        case .corrupt(let format, let message):
            return "invalid \(format.rawValue): \(message)"
        case .animated(let format):
            return "animated \(format.rawValue) images are not supported; send a still image"
        }
    }

    private static let decodableList: String = {
        let names = ImageFormat.decodable.map(\.rawValue)
        return names.dropLast().joined(separator: ", ") + " or " + names.last!
    }()
}

/// Decodes PNG, JPEG or WebP data, whichever its magic bytes say it is.
public enum ImageDecoder {
    /// Decodes `bytes` by the format its first bytes name (never by a file name or content type).
    ///
    /// - Parameters:
    ///   - maximumSamples: the most `width × height × channels` the decoded image may have; checked
    ///     on the header before any pixel memory is allocated.
    ///   - maximumSide: the longest side the caller needs, or `nil` for full size. A larger JPEG is
    ///     decoded at the smallest DCT scale (1/2, 1/4, 1/8) that keeps its long side at least this
    ///     long (see ``JPEG/decode(_:maximumSamples:maximumSide:)``); PNG and WebP decode at full size.
    /// - Returns: an 8-bit gray, RGB or RGBA image, upright (JPEG EXIF orientation applied).
    /// - Throws: ``ImageDecodingError``: `.unsupportedFormat` for a recognised format other than
    ///   PNG, JPEG and WebP, `.unrecognisedFormat` for anything else, and the format's own errors.
    public static func decode(_ bytes: [UInt8], maximumSamples: Int = PNG.defaultMaximumSamples,
                              maximumSide: Int? = nil) throws(ImageDecodingError) -> Image {
        guard let format = ImageFormat.sniff(bytes) else { throw .unrecognisedFormat }
        switch format {
        case .png:
            return try decodePNG(bytes, maximumSamples: maximumSamples)
        case .jpeg:
            return try JPEG.decode(bytes, maximumSamples: maximumSamples, maximumSide: maximumSide)
        case .webp:
            return try WebP.decode(bytes, maximumSamples: maximumSamples)
        case .gif, .bmp, .tiff, .heic, .avif, .jpegXL:
            throw .unsupportedFormat(format)
        }
    }

    /// PNG through ``PNG/decode(_:maximumSamples:)`` with its errors in this module's terms.
    ///
    /// libpng's simplified reader gives only a message, so a failure on data without a final
    /// `IEND` chunk is taken as truncation.
    static func decodePNG(_ bytes: [UInt8], maximumSamples: Int) throws(ImageDecodingError) -> Image {
        do {
            return try PNG.decode(bytes, maximumSamples: maximumSamples)
        } catch {
            switch error {
            case .imageTooLarge(let width, let height, let channels, let limit):
                throw .tooLarge(width: width, height: height, channels: channels, limit: limit)
            case .notPNG:
                throw .unrecognisedFormat
            case .decodingFailed(let message), .encodingFailed(let message):
                let iend: [UInt8] = [0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82]
                if bytes.count < 8 + 25 || !bytes.suffix(12).starts(with: [0, 0, 0, 0] + iend) {
                    throw .truncated(.png)
                }
                throw .corrupt(.png, message)
            }
        }
    }
}
