import CWebP

/// WebP decoding (and lossless encoding, for tests and tools) through libwebp.
public enum WebP {
    /// What the bitstream header says, read before any pixel memory is allocated.
    public struct Header: Equatable, Sendable {
        /// The canvas size (the VP8X canvas when there is one).
        public var width: Int
        public var height: Int
        public var hasAlpha: Bool
        public var isAnimated: Bool

        /// Channels of the decoded image: 4 with alpha, else 3.
        public var channels: Int { hasAlpha ? 4 : 3 }
    }

    /// Reads the header through `WebPGetFeatures`.
    /// - Throws: `.truncated(.webp)` or `.corrupt(.webp, message)`.
    public static func header(of bytes: [UInt8]) throws(ImageDecodingError) -> Header {
        var features = WebPBitstreamFeatures()
        let status = bytes.withUnsafeBufferPointer { WebPGetFeatures($0.baseAddress, $0.count, &features) }
        guard status == VP8_STATUS_OK else { throw error(status) }
        return Header(width: Int(features.width), height: Int(features.height),
                      hasAlpha: features.has_alpha != 0, isAnimated: features.has_animation != 0)
    }

    private static func error(_ status: VP8StatusCode) -> ImageDecodingError {
        switch status {
        case VP8_STATUS_NOT_ENOUGH_DATA: return .truncated(.webp)
        case VP8_STATUS_UNSUPPORTED_FEATURE: return .corrupt(.webp, "unsupported WebP feature")
        case VP8_STATUS_OUT_OF_MEMORY: return .corrupt(.webp, "out of memory")
        case VP8_STATUS_INVALID_PARAM: return .corrupt(.webp, "invalid parameter")
        default: return .corrupt(.webp, "bitstream error")
        }
    }

    /// Decodes a still WebP (lossy or lossless) into an 8-bit RGB image, RGBA when it has alpha.
    ///
    /// The header is read first: an animation is refused (`.animated(.webp)`) and a canvas whose
    /// `width × height × channels` exceeds `maximumSamples` is refused before anything is
    /// allocated (a WebP canvas may declare up to 16384 × 16384 in a few bytes). The pixels are
    /// decoded straight into the image's buffer.
    /// - Throws: `.animated(.webp)`, `.tooLarge`, `.truncated(.webp)`, `.corrupt(.webp, message)`.
    public static func decode(_ bytes: [UInt8], maximumSamples: Int = PNG.defaultMaximumSamples) throws(ImageDecodingError) -> Image {
        let header = try header(of: bytes)
        if header.isAnimated { throw .animated(.webp) }
        let width = header.width, height = header.height, channels = header.channels
        guard width > 0, height > 0 else { throw .corrupt(.webp, "empty image") }
        let (area, overflow1) = width.multipliedReportingOverflow(by: height)
        let (samples, overflow2) = area.multipliedReportingOverflow(by: channels)
        guard !overflow1, !overflow2, samples <= maximumSamples else {
            throw .tooLarge(width: width, height: height, channels: channels, limit: maximumSamples)
        }
        var config = WebPDecoderConfig()
        guard WebPInitDecoderConfig(&config) != 0 else { throw .corrupt(.webp, "libwebp version mismatch") }
        var pixels = [UInt8](repeating: 0, count: samples)
        let status = bytes.withUnsafeBufferPointer { source in
            pixels.withUnsafeMutableBufferPointer { target in
                config.output.colorspace = channels == 4 ? MODE_RGBA : MODE_RGB
                config.output.is_external_memory = 1
                config.output.u.RGBA.rgba = target.baseAddress
                config.output.u.RGBA.stride = Int32(width * channels)
                config.output.u.RGBA.size = target.count
                let status = WebPDecode(source.baseAddress, source.count, &config)
                WebPFreeDecBuffer(&config.output)
                return status
            }
        }
        guard status == VP8_STATUS_OK else { throw error(status) }
        return Image(width: width, height: height, channels: channels, pixels: pixels)
    }

    /// Encodes an RGB or RGBA image as lossless WebP (gray is expanded to RGB).
    /// - Throws: `.corrupt(.webp, message)` when libwebp cannot encode it.
    public static func encodeLossless(_ image: Image) throws(ImageDecodingError) -> [UInt8] {
        guard image.width > 0, image.height > 0 else { throw .corrupt(.webp, "image has no pixels") }
        let source = image.channels == 1 ? image.pixels.flatMap { [$0, $0, $0] } : image.pixels
        let channels = image.channels == 1 ? 3 : image.channels
        var output: UnsafeMutablePointer<UInt8>? = nil
        let size = source.withUnsafeBufferPointer { pixels in
            channels == 4
                ? WebPEncodeLosslessRGBA(pixels.baseAddress, Int32(image.width), Int32(image.height), Int32(image.width * 4), &output)
                : WebPEncodeLosslessRGB(pixels.baseAddress, Int32(image.width), Int32(image.height), Int32(image.width * 3), &output)
        }
        defer { WebPFree(output) }
        guard size > 0, let output else { throw .corrupt(.webp, "encoding failed") }
        return Array(UnsafeBufferPointer(start: output, count: size))
    }
}
