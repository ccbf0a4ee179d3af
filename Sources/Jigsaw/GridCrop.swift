/// Where the `grid × grid` cells of a `width × height` image lie: cells of `⌊width / grid⌋ ×
/// ⌊height / grid⌋` pixels in a centred region; when a side is not a multiple of the grid, at most
/// `grid − 1` pixels go, the odd one from the right or bottom. The one geometry behind
/// ``Puzzle/cut(_:grid:)``, ``PuzzleBatch`` and ``Image/cells(grid:)``, so the trainer, the
/// evaluator and the server cut the same way.
public struct GridCrop: Equatable, Sendable {
    public let grid: Int
    public let pieceWidth: Int
    public let pieceHeight: Int
    /// The first column of the cropped region.
    public let left: Int
    /// The first row of the cropped region.
    public let top: Int

    /// - Precondition: `grid ≥ 1` and both sides at least `grid`.
    public init(width: Int, height: Int, grid: Int) {
        precondition(grid >= 1 && width >= grid && height >= grid, "grid \(grid) does not fit \(width)×\(height)")
        self.grid = grid
        pieceWidth = width / grid
        pieceHeight = height / grid
        left = (width - grid * pieceWidth) / 2
        top = (height - grid * pieceHeight) / 2
    }

    /// The top-left pixel `(x, y)` of row-major cell `cell`.
    public func origin(ofCell cell: Int) -> (x: Int, y: Int) {
        (left + (cell % grid) * pieceWidth, top + (cell / grid) * pieceHeight)
    }
}
