extension Image {
    /// Whether the image carries colour: more than 1 % of its pixels have channels that differ by
    /// more than 8 of 255 (a gray picture stored as RGB does not count).
    public var isColourful: Bool {
        guard channels >= 3 else { return false }
        let count = width * height
        guard count > 0 else { return false }
        let step = max(1, count / 65_536)
        var coloured = 0, sampled = 0
        var p = 0
        while p < count {
            let r = Int(pixels[p * channels]), g = Int(pixels[p * channels + 1]), b = Int(pixels[p * channels + 2])
            if max(abs(r - g), abs(g - b), abs(r - b)) > 8 { coloured += 1 }
            sampled += 1
            p += step
        }
        return coloured * 100 > sampled
    }
}
