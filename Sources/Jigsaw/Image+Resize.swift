/// How `Image.resized` weighs source pixels.
public enum ResizeFilter: Sendable {
    /// Linear interpolation between the two nearest source pixels along each axis, with pixel
    /// centres at half-integer coordinates (`align_corners = false` in PyTorch, OpenCV's
    /// `INTER_LINEAR`). Aliases when shrinking by more than 2×.
    case bilinear
    /// Each output pixel is the mean of the source area it covers, fractional pixels weighted by
    /// their covered fraction (OpenCV's `INTER_AREA` when shrinking). Best for downscaling.
    case area
}

extension Image {
    /// One output coordinate's source span: the first source index and its weights.
    private struct Taps {
        var starts: [Int]
        var weights: [[Float]]
    }

    private static func taps(source: Int, target: Int, filter: ResizeFilter) -> Taps {
        let scale = Double(source) / Double(target)
        var starts: [Int] = []
        var weights: [[Float]] = []
        for x in 0..<target {
            switch filter {
            case .bilinear:
                let position = min(max((Double(x) + 0.5) * scale - 0.5, 0), Double(source - 1))
                let left = Int(position.rounded(.down))
                let fraction = Float(position - Double(left))
                if left + 1 < source {
                    starts.append(left)
                    weights.append([1 - fraction, fraction])
                } else {
                    starts.append(left)
                    weights.append([1])
                }
            case .area:
                let begin = Double(x) * scale, end = Double(x + 1) * scale
                let first = Int(begin.rounded(.down)), last = min(Int(end.rounded(.up)), source)
                var row: [Float] = []
                for s in first..<last {
                    let covered = min(end, Double(s + 1)) - max(begin, Double(s))
                    row.append(Float(covered / scale))
                }
                starts.append(first)
                weights.append(row)
            }
        }
        return Taps(starts: starts, weights: weights)
    }

    /// The image resampled to `width × height` (separable: rows, then columns, in float, rounded
    /// once at the end).
    /// - Complexity: O(width · height · channels · taps), taps ≤ 2 (bilinear) or ⌈scale⌉ + 1 (area).
    public func resized(width newWidth: Int, height newHeight: Int, filter: ResizeFilter = .bilinear) -> Image {
        precondition(newWidth > 0 && newHeight > 0, "target size \(newWidth)×\(newHeight) must be positive")
        precondition(width > 0 && height > 0, "cannot resize an empty image")
        if newWidth == width && newHeight == height { return self }
        let horizontal = Self.taps(source: width, target: newWidth, filter: filter)
        let vertical = Self.taps(source: height, target: newHeight, filter: filter)
        // Flattened taps: output x reads source start[x] ..< start[x] + count[x] with weights
        // from offset[x]; the sums run in the same order as a per-tap loop would.
        func flatten(_ taps: Taps) -> (starts: [Int], counts: [Int], offsets: [Int], weights: [Float]) {
            var counts: [Int] = [], offsets: [Int] = [], weights: [Float] = []
            for row in taps.weights {
                offsets.append(weights.count)
                counts.append(row.count)
                weights += row
            }
            return (taps.starts, counts, offsets, weights)
        }
        let h = flatten(horizontal), v = flatten(vertical)
        let channels = self.channels, width = self.width, height = self.height
        // Horizontal pass into a float buffer of height × newWidth × channels.
        var middle = [Float](repeating: 0, count: height * newWidth * channels)
        var output = [UInt8](repeating: 0, count: newHeight * newWidth * channels)
        pixels.withUnsafeBufferPointer { source in
            middle.withUnsafeMutableBufferPointer { middle in
                h.weights.withUnsafeBufferPointer { weights in
                    for y in 0..<height {
                        let row = source.baseAddress! + y * width * channels
                        let out = middle.baseAddress! + y * newWidth * channels
                        for x in 0..<newWidth {
                            let first = row + h.starts[x] * channels, w = weights.baseAddress! + h.offsets[x], taps = h.counts[x]
                            for c in 0..<channels {
                                var sum: Float = 0
                                for k in 0..<taps { sum += w[k] * Float(first[k * channels + c]) }
                                out[x * channels + c] = sum
                            }
                        }
                    }
                }
            }
        }
        let rowLength = newWidth * channels
        middle.withUnsafeBufferPointer { middle in
            output.withUnsafeMutableBufferPointer { output in
                v.weights.withUnsafeBufferPointer { weights in
                    for y in 0..<newHeight {
                        let first = middle.baseAddress! + v.starts[y] * rowLength
                        let w = weights.baseAddress! + v.offsets[y], taps = v.counts[y]
                        let out = output.baseAddress! + y * rowLength
                        for i in 0..<rowLength {
                            var sum: Float = 0
                            for k in 0..<taps { sum += w[k] * first[k * rowLength + i] }
                            out[i] = UInt8(min(max(sum.rounded(), 0), 255))
                        }
                    }
                }
            }
        }
        return Image(width: newWidth, height: newHeight, channels: channels, pixels: output)
    }

    /// The central `width × height` region; when the excess is odd, the extra pixel is dropped
    /// from the right or bottom (left/top offset `(old − new) / 2`, rounded down).
    public func centerCropped(width newWidth: Int, height newHeight: Int) -> Image {
        precondition(newWidth <= width && newHeight <= height && newWidth >= 0 && newHeight >= 0,
                     "cannot crop \(width)×\(height) to \(newWidth)×\(newHeight)")
        return cropped(left: (width - newWidth) / 2, top: (height - newHeight) / 2, width: newWidth, height: newHeight)
    }

    /// Scales the image so that it covers `width × height` with its aspect ratio kept (the shorter
    /// side fits exactly), then crops the centre: torchvision's `Resize` + `CenterCrop`.
    /// Shrinking uses the area filter, enlarging the bilinear one.
    public func resizedToFill(width newWidth: Int, height newHeight: Int) -> Image {
        precondition(newWidth > 0 && newHeight > 0, "target size \(newWidth)×\(newHeight) must be positive")
        let scale = max(Double(newWidth) / Double(width), Double(newHeight) / Double(height))
        let scaledWidth = max(newWidth, Int((Double(width) * scale).rounded()))
        let scaledHeight = max(newHeight, Int((Double(height) * scale).rounded()))
        let filter: ResizeFilter = scale < 1 ? .area : .bilinear
        return resized(width: scaledWidth, height: scaledHeight, filter: filter)
            .centerCropped(width: newWidth, height: newHeight)
    }
}
