import TensorKit

extension ImageDataset {
    /// Every image translated by `x` columns right and `y` rows down (negative: left, up), the
    /// uncovered pixels black: a digit that no longer sits where MNIST centres it, as when a
    /// 28 px digit is cropped from the top-left corner of its frame instead of the centre.
    public func shifted(x: Int, y: Int) -> ImageDataset {
        translated { (x, y) }
    }

    /// Every image translated by its own offsets, a column and a row offset drawn uniformly from
    /// `-maximum...maximum` (in that order, image by image), the uncovered pixels black.
    public func randomlyShifted(maximum: Int, generator: inout SeededGenerator) -> ImageDataset {
        precondition(maximum >= 0, "the largest shift must not be negative")
        let span = 2 * maximum + 1
        return translated {
            let x = generator.nextInt(below: span) - maximum
            return (x, generator.nextInt(below: span) - maximum)
        }
    }

    /// Every image translated by the (columns right, rows down) that `offsets` gives, called once
    /// per image in order.
    private func translated(by offsets: () -> (x: Int, y: Int)) -> ImageDataset {
        var result = self
        let (h, w) = (height, width)
        pixels.withUnsafeBufferPointer { source in
            result.pixels.withUnsafeMutableBufferPointer { target in
                for image in 0..<count {
                    let (x, y) = offsets()
                    for channel in 0..<channels {
                        let base = (image * channels + channel) * h * w
                        for row in 0..<h {
                            let sourceRow = row - y
                            for column in 0..<w {
                                let sourceColumn = column - x
                                let inside = sourceRow >= 0 && sourceRow < h && sourceColumn >= 0 && sourceColumn < w
                                target[base + row * w + column] = inside ? source[base + sourceRow * w + sourceColumn] : 0
                            }
                        }
                    }
                }
            }
        }
        return result
    }
}
