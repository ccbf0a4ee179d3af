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

extension ImageDataset {
    /// Every image, with probability `probability`, given thicker or thinner strokes (even odds):
    /// each pixel moves towards the largest (thicker) or the smallest (thinner) value of its 3 × 3
    /// neighbourhood by a strength drawn uniformly from `[0.5, 1]`, repeated for a number of passes
    /// drawn uniformly from `1...maximumPasses`. The draws per image come in order (whether and
    /// which way, the strength, then the passes when `maximumPasses > 1`), so a seed gives the same
    /// images every time.
    public func strokeVaried(probability: Float, maximumPasses: Int = 1, generator: inout SeededGenerator) -> ImageDataset {
        precondition(probability >= 0 && probability <= 1, "the probability must be in [0, 1]")
        precondition(maximumPasses >= 1, "at least one pass")
        var result = self
        let (h, w) = (height, width)
        var scratch = [UInt8](repeating: 0, count: h * w)
        result.pixels.withUnsafeMutableBufferPointer { target in
            for image in 0..<count {
                let draw = generator.nextUniform()
                let strength = 0.5 + 0.5 * generator.nextUniform()
                let passes = maximumPasses > 1 ? 1 + generator.nextInt(below: maximumPasses) : 1
                guard draw < probability else { continue }
                let thicker = draw < probability / 2
                for channel in 0..<channels {
                    let base = (image * channels + channel) * h * w
                    for _ in 0..<passes {
                        for index in 0..<(h * w) { scratch[index] = target[base + index] }
                        for row in 0..<h {
                            for column in 0..<w {
                                var extreme = Int(scratch[row * w + column])
                                for y in max(0, row - 1)...min(h - 1, row + 1) {
                                    for x in max(0, column - 1)...min(w - 1, column + 1) {
                                        let value = Int(scratch[y * w + x])
                                        extreme = thicker ? max(extreme, value) : min(extreme, value)
                                    }
                                }
                                let own = Float(scratch[row * w + column])
                                target[base + row * w + column] = UInt8((own + strength * (Float(extreme) - own)).rounded())
                            }
                        }
                    }
                }
            }
        }
        return result
    }
}
