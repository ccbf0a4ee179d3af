extension Image {
    /// The `width × height` rectangle whose top-left pixel is `(left, top)`.
    public func cropped(left: Int, top: Int, width newWidth: Int, height newHeight: Int) -> Image {
        precondition(left >= 0 && top >= 0 && newWidth >= 0 && newHeight >= 0
                     && left + newWidth <= width && top + newHeight <= height,
                     "crop \(left),\(top) \(newWidth)×\(newHeight) outside \(width)×\(height)")
        var output = [UInt8]()
        output.reserveCapacity(newWidth * newHeight * channels)
        for y in top..<(top + newHeight) {
            let begin = (y * width + left) * channels
            output.append(contentsOf: pixels[begin..<(begin + newWidth * channels)])
        }
        return Image(width: newWidth, height: newHeight, channels: channels, pixels: output)
    }

    /// The `grid × grid` cells of the image in row-major order.
    ///
    /// When a side is not a multiple of `grid` the image is first centre-cropped to the largest
    /// multiple (``GridCrop``), as `Puzzle.cut` does.
    /// - Precondition: `grid ≥ 1` and both sides at least `grid`.
    public func cells(grid: Int) -> [Image] {
        let crop = GridCrop(width: width, height: height, grid: grid)
        return (0..<(grid * grid)).map { cell in
            let origin = crop.origin(ofCell: cell)
            return cropped(left: origin.x, top: origin.y, width: crop.pieceWidth, height: crop.pieceHeight)
        }
    }

    /// Tiles `grid²` equally sized cells (row-major) into one image.
    public static func tiled(_ cells: [Image], grid: Int) -> Image {
        precondition(cells.count == grid * grid && !cells.isEmpty, "\(cells.count) cells for grid \(grid)")
        let (cellWidth, cellHeight, channels) = (cells[0].width, cells[0].height, cells[0].channels)
        precondition(cells.allSatisfy { $0.width == cellWidth && $0.height == cellHeight && $0.channels == channels },
                     "cells differ in size or channels")
        let width = grid * cellWidth, height = grid * cellHeight
        var pixels = [UInt8](repeating: 0, count: width * height * channels)
        for (index, cell) in cells.enumerated() {
            let left = (index % grid) * cellWidth, top = (index / grid) * cellHeight
            let rowBytes = cellWidth * channels
            for y in 0..<cellHeight {
                let target = ((top + y) * width + left) * channels
                pixels.replaceSubrange(target..<(target + rowBytes), with: cell.pixels[(y * rowBytes)..<((y + 1) * rowBytes)])
            }
        }
        return Image(width: width, height: height, channels: channels, pixels: pixels)
    }

    /// The image resampled to `width × height`: the area filter when shrinking, bilinear when
    /// enlarging, unchanged when already that size.
    public func fitted(width newWidth: Int, height newHeight: Int) -> Image {
        if newWidth == width && newHeight == height { return self }
        let shrinking = newWidth <= width && newHeight <= height
        return resized(width: newWidth, height: newHeight, filter: shrinking ? .area : .bilinear)
    }
}
