extension ImageDataset {
    /// Every image translated by `x` columns right and `y` rows down (negative: left, up), the
    /// uncovered pixels black: a digit that no longer sits where MNIST centres it, as when a
    /// 28 px digit is cropped from the top-left corner of its frame instead of the centre.
    public func shifted(x: Int, y: Int) -> ImageDataset {
        var result = self
        let (h, w) = (height, width)
        for image in 0..<count {
            for channel in 0..<channels {
                let base = (image * channels + channel) * h * w
                for row in 0..<h {
                    for column in 0..<w {
                        let (sourceRow, sourceColumn) = (row - y, column - x)
                        let inside = sourceRow >= 0 && sourceRow < h && sourceColumn >= 0 && sourceColumn < w
                        result.pixels[base + row * w + column] = inside ? pixels[base + sourceRow * w + sourceColumn] : 0
                    }
                }
            }
        }
        return result
    }
}
