import TensorKit

/// The colour that transparent pixels are composited onto when alpha is dropped.
public enum AlphaBackground: Sendable {
    case black
    case white

    var value: Float { self == .black ? 0 : 1 }
}

extension Image {
    /// Luma weights of ITU-R BT.601 (`Y = 0.299 R + 0.587 G + 0.114 B`), the usual gray conversion
    /// (PIL's `convert("L")`, torchvision's `rgb_to_grayscale`).
    public static let lumaWeights: (red: Float, green: Float, blue: Float) = (0.299, 0.587, 0.114)

    /// Colour values of pixel `index` in [0, 1] with alpha composited onto `background`:
    /// `c' = a·c + (1 − a)·background`.
    @inline(__always)
    private func compositedColour(_ index: Int, background: Float) -> (Float, Float, Float) {
        let base = index * channels
        switch channels {
        case 1:
            let v = Float(pixels[base]) / 255
            return (v, v, v)
        case 3:
            return (Float(pixels[base]) / 255, Float(pixels[base + 1]) / 255, Float(pixels[base + 2]) / 255)
        default:
            let alpha = Float(pixels[base + 3]) / 255
            let rest = (1 - alpha) * background
            return (alpha * Float(pixels[base]) / 255 + rest,
                    alpha * Float(pixels[base + 1]) / 255 + rest,
                    alpha * Float(pixels[base + 2]) / 255 + rest)
        }
    }

    /// The image as a float tensor `[C, H, W]` with values in [0, 1].
    ///
    /// Alpha is composited onto `background`; one output channel takes the BT.601 luma of the
    /// colour (a gray source is copied as is); three channels replicate a gray source.
    /// - Parameters:
    ///   - channels: 1 or 3; `nil` keeps gray images gray and makes every other image RGB.
    ///   - background: what transparent pixels become.
    public func tensor(channels outputChannels: Int? = nil, background: AlphaBackground = .black) -> Tensor {
        let count = outputChannels ?? (channels == 1 ? 1 : 3)
        precondition(count == 1 || count == 3, "a tensor image has 1 or 3 channels, not \(count)")
        let plane = width * height
        var result = Tensor(shape: [count, height, width])
        let weights = Self.lumaWeights
        let background = background.value
        result.withUnsafeMutableBufferPointer { out in
            for index in 0..<plane {
                let (r, g, b) = compositedColour(index, background: background)
                if count == 1 {
                    out[index] = channels == 1 ? r : weights.red * r + weights.green * g + weights.blue * b
                } else {
                    out[index] = r
                    out[plane + index] = g
                    out[2 * plane + index] = b
                }
            }
        }
        return result
    }

    /// An image from a float tensor `[C, H, W]` (C = 1, 3 or 4) of values in [0, 1]; values are
    /// clamped and rounded to the nearest of 256 levels (NaN becomes 0).
    public init(tensor: Tensor) {
        precondition(tensor.rank == 3 && [1, 3, 4].contains(tensor.shape[0]),
                     "expected a [C, H, W] tensor with C of 1, 3 or 4, got \(tensor.shape)")
        let (channels, height, width) = (tensor.shape[0], tensor.shape[1], tensor.shape[2])
        let plane = width * height
        var pixels = [UInt8](repeating: 0, count: plane * channels)
        tensor.withUnsafeBufferPointer { source in
            for c in 0..<channels {
                for index in 0..<plane {
                    let value = source[c * plane + index]
                    let clamped = value > 0 ? min(value, 1) : 0
                    pixels[index * channels + c] = UInt8((clamped * 255).rounded())
                }
            }
        }
        self.init(width: width, height: height, channels: channels, pixels: pixels)
    }

    /// The image with another channel count: gray ↔ RGB by BT.601 luma or replication, alpha
    /// composited onto `background` when dropped, opaque alpha (255) when added.
    public func converted(toChannels outputChannels: Int, background: AlphaBackground = .black) -> Image {
        precondition([1, 3, 4].contains(outputChannels), "unsupported channel count \(outputChannels)")
        if outputChannels == channels { return self }
        let plane = width * height
        var output = [UInt8](repeating: 255, count: plane * outputChannels)
        let weights = Self.lumaWeights
        let background = background.value
        for index in 0..<plane {
            let base = index * outputChannels
            if outputChannels == 4 {
                // Adding alpha: the colour is copied exactly, without a round trip through floats.
                for c in 0..<3 { output[base + c] = pixels[index * channels + (channels == 1 ? 0 : c)] }
                continue
            }
            let (r, g, b) = compositedColour(index, background: background)
            if outputChannels == 1 {
                let y = channels == 1 ? r : weights.red * r + weights.green * g + weights.blue * b
                output[base] = UInt8((min(max(y, 0), 1) * 255).rounded())
            } else {
                output[base] = UInt8((r * 255).rounded())
                output[base + 1] = UInt8((g * 255).rounded())
                output[base + 2] = UInt8((b * 255).rounded())
            }
        }
        return Image(width: width, height: height, channels: outputChannels, pixels: output)
    }
}
