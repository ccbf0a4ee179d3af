/// An 8-bit image with interleaved channels: gray (1), RGB (3) or RGBA (4).
///
/// `pixels[(y · width + x) · channels + c]` is channel `c` of the pixel in row `y`, column `x`;
/// alpha, when present, is straight (not premultiplied).
public struct Image: Equatable, Sendable {
    public var width: Int
    public var height: Int
    /// 1 (gray), 3 (RGB) or 4 (RGBA).
    public var channels: Int
    /// `height · width · channels` samples, row-major, channels interleaved.
    public var pixels: [UInt8]

    /// An image that takes ownership of `pixels`.
    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(width >= 0 && height >= 0, "negative image size \(width)×\(height)")
        precondition(channels == 1 || channels == 3 || channels == 4, "unsupported channel count \(channels)")
        precondition(pixels.count == width * height * channels,
                     "\(pixels.count) samples do not fit \(width)×\(height)×\(channels)")
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    /// An image filled with one value in every sample.
    public init(width: Int, height: Int, channels: Int, repeating value: UInt8 = 0) {
        self.init(width: width, height: height, channels: channels,
                  pixels: [UInt8](repeating: value, count: width * height * channels))
    }

    /// Sample `channel` of the pixel at column `x`, row `y` (for tests and cold paths).
    public subscript(x: Int, y: Int, channel: Int) -> UInt8 {
        get {
            precondition(x >= 0 && x < width && y >= 0 && y < height && channel >= 0 && channel < channels,
                         "pixel (\(x), \(y), \(channel)) outside \(width)×\(height)×\(channels)")
            return pixels[(y * width + x) * channels + channel]
        }
        set {
            precondition(x >= 0 && x < width && y >= 0 && y < height && channel >= 0 && channel < channels,
                         "pixel (\(x), \(y), \(channel)) outside \(width)×\(height)×\(channels)")
            pixels[(y * width + x) * channels + channel] = newValue
        }
    }
}
