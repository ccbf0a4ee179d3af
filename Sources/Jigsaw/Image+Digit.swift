/// Turning a picture of one handwritten digit into an MNIST digit.
extension Image {
    /// Why a picture holds no digit to normalise.
    public enum DigitError: Error, Equatable, Sendable, CustomStringConvertible {
        /// The picture is empty or of one uniform tone: no stroke stands out of the background.
        case noInk

        public var description: String {
            switch self {
            case .noInk: "the image holds no stroke that stands out of its background"
            }
        }
    }

    /// The digit of this picture as MNIST prepares its digits (LeCun et al.): a `side × side` gray
    /// image, light ink on black, the bounding box of its strokes (the pixels of at least half
    /// the strongest ink) scaled, aspect kept, so that its longer side is `box` pixels, and placed
    /// so that its centre of mass sits at the centre.
    ///
    /// A picture larger than 256 px a side is first shrunk to that (area filter).
    /// The picture may be a phone photo of dark ink on paper or an already MNIST-like light stroke
    /// on black, in colour or gray: colour becomes BT.601 luma, alpha composited on white; the background's tone is the median of
    /// the picture's outermost pixels, so a border darker than the mean of the whole picture
    /// means light ink on dark (kept), otherwise dark ink on light (inverted). Ink is the distance
    /// from the background tone, stretched so that the strongest 1 % of the picture's pixels are
    /// white, and anything below a tenth of that is background (paper grain, uneven light).
    ///
    /// - Throws: ``DigitError/noInk`` when nothing stands out.
    public func mnistDigit(side: Int = 28, box: Int = 20) throws(DigitError) -> Image {
        precondition(side > 0 && box > 0 && box <= side, "the box must fit the side")
        guard width > 0, height > 0 else { throw .noInk }
        // A photo has far more pixels than a 20 px digit needs: work on at most 256 px a side.
        let longest = max(width, height)
        if longest > Self.digitWorkingSide {
            let scale = Double(Self.digitWorkingSide) / Double(longest)
            return try fitted(width: max(1, Int((Double(width) * scale).rounded())),
                              height: max(1, Int((Double(height) * scale).rounded()))).mnistDigit(side: side, box: box)
        }
        let count = width * height
        var luma = [Float](repeating: 0, count: count)
        var border: [Float] = []
        for y in 0..<height {
            for x in 0..<width {
                let p = (y * width + x) * channels
                var value: Float
                if channels >= 3 {
                    value = 0.299 * Float(pixels[p]) + 0.587 * Float(pixels[p + 1]) + 0.114 * Float(pixels[p + 2])
                } else {
                    value = Float(pixels[p])
                }
                if channels == 4 {
                    let alpha = Float(pixels[p + channels - 1]) / 255
                    value = value * alpha + 255 * (1 - alpha)
                }
                luma[y * width + x] = value
                if x == 0 || y == 0 || x == width - 1 || y == height - 1 { border.append(value) }
            }
        }
        let background = Self.median(border)
        let lightInk = background < luma.reduce(0, +) / Float(count)
        var ink = luma.map { lightInk ? max(0, $0 - background) : max(0, background - $0) }
        let sorted = ink.sorted()
        let strong = sorted[min(count - 1, Int(Float(count) * 0.99))]
        let top = max(strong, sorted[count - 1] * 0.5)
        guard top >= 24 else { throw .noInk }
        let floor = top * 0.1
        // The box of the strokes proper (ink of at least half the strongest), which MNIST scales
        // to `box` pixels; the fainter edges around it come along.
        var minX = width, minY = height, maxX = -1, maxY = -1
        for y in 0..<height {
            for x in 0..<width {
                let value = ink[y * width + x]
                ink[y * width + x] = value < floor ? 0 : min(1, (value - floor) / (top - floor))
                if ink[y * width + x] >= 0.5 {
                    minX = min(minX, x); maxX = max(maxX, x); minY = min(minY, y); maxY = max(maxY, y)
                }
            }
        }
        guard maxX >= 0 else { throw .noInk }
        let scale = Float(box) / Float(max(maxX - minX + 1, maxY - minY + 1))
        let margin = Int((Float(box) / 8 / scale).rounded(.up))
        minX = max(0, minX - margin); minY = max(0, minY - margin)
        maxX = min(width - 1, maxX + margin); maxY = min(height - 1, maxY + margin)
        let (boxWidth, boxHeight) = (maxX - minX + 1, maxY - minY + 1)
        let scaledWidth = max(1, min(side, Int((Float(boxWidth) * scale).rounded())))
        let scaledHeight = max(1, min(side, Int((Float(boxHeight) * scale).rounded())))
        var cropped = Image(width: boxWidth, height: boxHeight, channels: 1)
        for y in 0..<boxHeight {
            for x in 0..<boxWidth {
                cropped.pixels[y * boxWidth + x] = UInt8((ink[(minY + y) * width + minX + x] * 255).rounded())
            }
        }
        let scaled = cropped.fitted(width: scaledWidth, height: scaledHeight)
        // The centre of mass of the scaled digit goes to the centre of the frame.
        var mass: Float = 0, sumX: Float = 0, sumY: Float = 0
        for y in 0..<scaledHeight {
            for x in 0..<scaledWidth {
                let value = Float(scaled.pixels[y * scaledWidth + x])
                mass += value; sumX += value * (Float(x) + 0.5); sumY += value * (Float(y) + 0.5)
            }
        }
        guard mass > 0 else { throw .noInk }
        let centre = Float(side) / 2
        let left = Int((centre - sumX / mass).rounded()), top0 = Int((centre - sumY / mass).rounded())
        // Only the faint margin around the strokes can fall outside the frame.
        var digit = Image(width: side, height: side, channels: 1)
        for y in 0..<scaledHeight where (0..<side).contains(top0 + y) {
            for x in 0..<scaledWidth where (0..<side).contains(left + x) {
                digit.pixels[(top0 + y) * side + left + x] = scaled.pixels[y * scaledWidth + x]
            }
        }
        return digit
    }

    /// The longest side ``mnistDigit(side:box:)`` works at.
    static let digitWorkingSide = 256

    private static func median(_ values: [Float]) -> Float {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        return sorted[sorted.count / 2]
    }
}
