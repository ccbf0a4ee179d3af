import CPNG

/// Errors from decoding or encoding PNG data.
public enum PNGError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The data does not start with the 8-byte PNG signature (RFC 2083 §3.1).
    case notPNG
    /// The declared `width × height × channels` exceeds the decoder's limit; nothing was allocated.
    case imageTooLarge(width: Int, height: Int, channels: Int, limit: Int)
    /// libpng refused the data (truncated, bad CRC, corrupt compressed stream, …); its message.
    case decodingFailed(String)
    /// libpng could not encode the image; its message.
    case encodingFailed(String)

    public var description: String {
        switch self {
        case .notPNG: return "the data is not a PNG image"
        case .imageTooLarge(let width, let height, let channels, let limit):
            return "PNG image of \(width)×\(height)×\(channels) samples exceeds the limit of \(limit)"
        case .decodingFailed(let message): return "invalid PNG: \(message)"
        case .encodingFailed(let message): return "PNG encoding failed: \(message)"
        }
    }
}

/// PNG decoding and encoding through libpng's simplified API (`png_image`).
public enum PNG {
    /// The default decode limit on `width × height × channels`: 64 Mi samples (8192 × 8192 RGB is
    /// 192 Mi, refused; 4096 × 4096 RGBA is 64 Mi, accepted).
    public static let defaultMaximumSamples = 64 << 20

    /// The header facts the decoder needs before it allocates pixels.
    public struct Header: Equatable, Sendable {
        public var width: Int
        public var height: Int
        /// Channels of the decoded image: 1 (gray), 3 (RGB) or 4 (RGBA; gray + alpha becomes RGBA).
        public var channels: Int

        public init(width: Int, height: Int, channels: Int) {
            self.width = width
            self.height = height
            self.channels = channels
        }
    }

    // png.h's format bits; the composite macros do not import into Swift.
    private static let flagAlpha: UInt32 = 0x01
    private static let flagColour: UInt32 = 0x02
    /// `PNG_IMAGE_FLAG_FAST` (a `png_image.flags` bit).
    private static let flagFast: UInt32 = 0x02
    private static let imageVersion: UInt32 = 1
    private static let flagLinear: UInt32 = 0x04
    private static let flag16BitSRGB: UInt32 = 0x04

    private static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    private static func message(of image: png_image) -> String {
        withUnsafeBytes(of: image.message) { raw in
            let bytes = raw.prefix { $0 != 0 }
            return String(decoding: bytes, as: UTF8.self)
        }
    }

    /// Reads the header of PNG data without decoding pixels.
    /// - Throws: `.notPNG`, or `.decodingFailed` with libpng's message.
    public static func header(of bytes: [UInt8]) throws(PNGError) -> Header {
        guard bytes.count >= 8, Array(bytes[0..<8]) == signature else { throw .notPNG }
        return try bytes.withUnsafeBytes { raw -> Result<Header, PNGError> in
            var image = png_image()
            image.version = imageVersion
            guard png_image_begin_read_from_memory(&image, raw.baseAddress, raw.count) != 0 else {
                return .failure(.decodingFailed(message(of: image)))
            }
            png_image_free(&image)
            return .success(Header(width: Int(image.width), height: Int(image.height), channels: channels(of: image.format)))
        }.get()
    }

    private static func channels(of format: UInt32) -> Int {
        switch (format & flagColour != 0, format & flagAlpha != 0) {
        case (false, false): return 1
        case (true, false): return 3
        default: return 4
        }
    }

    /// Decodes PNG data of any colour type, bit depth and interlacing into an 8-bit image.
    ///
    /// Gray stays 1 channel, RGB and palette without transparency become 3, anything with alpha
    /// (gray + alpha, RGBA, palette or gray/RGB with a `tRNS` chunk) becomes RGBA. 16-bit samples
    /// are scaled to 8 bits (`round(v / 257)`); they are treated as sRGB-encoded like 8-bit ones
    /// (`PNG_IMAGE_FLAG_16BIT_sRGB`), so no gamma curve is applied. Bit depths below 8 are expanded
    /// to the full range.
    ///
    /// The header is read first and an image whose `width × height × channels` exceeds
    /// `maximumSamples` is refused before any pixel memory is allocated.
    /// - Throws: `.notPNG`, `.imageTooLarge`, or `.decodingFailed` with libpng's message (a
    ///   truncated file, a CRC error, a corrupt zlib stream, …).
    /// - Complexity: O(width · height).
    public static func decode(_ bytes: [UInt8], maximumSamples: Int = defaultMaximumSamples) throws(PNGError) -> Image {
        guard bytes.count >= 8, Array(bytes[0..<8]) == signature else { throw .notPNG }
        return try bytes.withUnsafeBytes { raw -> Result<Image, PNGError> in
            var image = png_image()
            image.version = imageVersion
            guard png_image_begin_read_from_memory(&image, raw.baseAddress, raw.count) != 0 else {
                return .failure(.decodingFailed(message(of: image)))
            }
            let channels = channels(of: image.format)
            let width = Int(image.width), height = Int(image.height)
            let (pixelsCount, overflow1) = width.multipliedReportingOverflow(by: height)
            let (samples, overflow2) = pixelsCount.multipliedReportingOverflow(by: channels)
            guard !overflow1, !overflow2, samples <= maximumSamples else {
                png_image_free(&image)
                return .failure(.imageTooLarge(width: width, height: height, channels: channels, limit: maximumSamples))
            }
            // IHDR is the first chunk (libpng has validated it), so its interlace byte is at 28.
            if image.format & flagLinear != 0 && raw[28] != 0 {
                return decodeInterlaced16Bit(&image, channels: channels).map {
                    Image(width: width, height: height, channels: channels, pixels: $0)
                }
            }
            image.format = channels == 1 ? 0 : (channels == 3 ? flagColour : flagColour | flagAlpha)
            image.flags |= flag16BitSRGB
            var pixels = [UInt8](repeating: 0, count: samples)
            let status = pixels.withUnsafeMutableBytes { buffer in
                // libpng frees the image itself when finishing, on success and on failure.
                png_image_finish_read(&image, nil, buffer.baseAddress, Int32(width * channels), nil)
            }
            guard status != 0 else { return .failure(.decodingFailed(message(of: image))) }
            return .success(Image(width: width, height: height, channels: channels, pixels: pixels))
        }.get()
    }

    /// Decodes a 16-bit interlaced image through libpng's 16-bit linear output and scales it to
    /// 8 bits here.
    ///
    /// libpng 1.6.39's simplified reader returns scrambled pixels when it converts an interlaced
    /// 16-bit file to 8-bit output; its 16-bit output is correct. Files without a gAMA chunk
    /// are taken as linear at 16 bits, so this output holds the stored samples unchanged, except
    /// that colour is premultiplied by alpha: dividing it back out costs at most one 16-bit step
    /// for alpha ≥ 0.5 (so at most ±1 after scaling to 8 bits), more for nearly transparent pixels.
    private static func decodeInterlaced16Bit(_ image: inout png_image, channels: Int) -> Result<[UInt8], PNGError> {
        let width = Int(image.width), height = Int(image.height)
        image.format = flagLinear | (channels == 1 ? 0 : (channels == 3 ? flagColour : flagColour | flagAlpha))
        var wide = [UInt16](repeating: 0, count: width * height * channels)
        let status = wide.withUnsafeMutableBytes { buffer in
            png_image_finish_read(&image, nil, buffer.baseAddress, Int32(width * channels), nil)
        }
        guard status != 0 else { return .failure(.decodingFailed(message(of: image))) }
        var pixels = [UInt8](repeating: 0, count: wide.count)
        // round(v / 257) in integers: (2v + 257) / 514.
        @inline(__always) func scale(_ value: UInt32) -> UInt8 { UInt8((2 * min(value, 65535) + 257) / 514) }
        if channels == 4 {
            for p in 0..<(width * height) {
                let alpha = UInt32(wide[4 * p + 3])
                for c in 0..<3 {
                    let premultiplied = UInt32(wide[4 * p + c])
                    pixels[4 * p + c] = alpha == 0 ? 0 : scale((premultiplied * 65535 + alpha / 2) / alpha)
                }
                pixels[4 * p + 3] = scale(alpha)
            }
        } else {
            for i in 0..<wide.count { pixels[i] = scale(UInt32(wide[i])) }
        }
        return .success(pixels)
    }

    /// Encodes an 8-bit gray, RGB or RGBA image as PNG bytes (non-interlaced). `fast` trades size
    /// for speed (libpng's `PNG_IMAGE_FLAG_FAST`: quicker filtering and compression, a larger file),
    /// for answers made per request rather than files to keep.
    /// - Throws: `.encodingFailed` with libpng's message (for example an empty image).
    public static func encode(_ image: Image, fast: Bool = false) throws(PNGError) -> [UInt8] {
        guard image.width > 0, image.height > 0 else { throw .encodingFailed("image has no pixels") }
        var descriptor = png_image()
        descriptor.version = imageVersion
        descriptor.width = UInt32(image.width)
        descriptor.height = UInt32(image.height)
        descriptor.format = image.channels == 1 ? 0 : (image.channels == 3 ? flagColour : flagColour | flagAlpha)
        if fast { descriptor.flags = flagFast }
        let stride = Int32(image.width * image.channels)
        // libpng's bound on the compressed stream (PNG_IMAGE_PNG_SIZE_MAX): one compression pass
        // into a buffer that cannot be too small.
        let data = (image.width * image.channels + 1) * image.height
        let bound = data + (data + 7) / 8 + (data + 63) / 64 + 11 + 8 + 25 + 16 + 44 + 12 + 12 * (data / 8192 + 2) + 64
        return try image.pixels.withUnsafeBytes { source -> Result<[UInt8], PNGError> in
            var output = [UInt8](repeating: 0, count: bound)
            var size = bound
            let status = output.withUnsafeMutableBytes { buffer in
                png_image_write_to_memory(&descriptor, buffer.baseAddress, &size, 0, source.baseAddress, stride, nil)
            }
            guard status != 0, size <= output.count else { return .failure(.encodingFailed(message(of: descriptor))) }
            if size < output.count { output.removeLast(output.count - size) }
            return .success(output)
        }.get()
    }
}
