import NeuralNet

/// A learning-free jigsaw solver: places pieces to minimise the total edge dissimilarity
/// (`EdgeCompatibility`) over all horizontally and vertically adjacent grid cells.
///
/// For `n ≤ exhaustiveLimit` (9, a 3×3 grid) the minimum is exact: a depth-first search over cells
/// in row-major order with the running cost and an admissible bound (the cheapest possible incoming
/// edges of every cell still empty), seeded with the beam-search solution. Larger grids use a
/// row-major beam search: cells are filled in row-major order, each partial placement extended by
/// every unused piece (cost of its left and upper edge), keeping the `beamWidth` cheapest.
///
/// Results follow the project convention: `permutation[i] = j` means scrambled piece `i` belongs in
/// cell `j` (row-major).
public enum ClassicSolver {
    public static let exhaustiveLimit = 9

    /// The total cost of `cells` (`cells[k]` = the piece in cell `k`) on a `grid × grid` board.
    public static func cost(cells: [Int], grid: Int, costs: EdgeCompatibility) -> Float {
        let n = costs.count
        var total: Float = 0
        for k in 0..<(grid * grid) {
            if k % grid > 0 { total += costs.left[cells[k - 1] * n + cells[k]] }
            if k >= grid { total += costs.above[cells[k - grid] * n + cells[k]] }
        }
        return total
    }

    /// The cost of a permutation in the project convention.
    public static func cost(permutation: [Int], grid: Int, costs: EdgeCompatibility) -> Float {
        cost(cells: cells(from: permutation), grid: grid, costs: costs)
    }

    /// Cell contents from a permutation: `cells[permutation[i]] = i`.
    public static func cells(from permutation: [Int]) -> [Int] {
        var cells = [Int](repeating: 0, count: permutation.count)
        for (piece, cell) in permutation.enumerated() { cells[cell] = piece }
        return cells
    }

    /// The permutation of a placement: `permutation[cells[k]] = k`.
    public static func permutation(from cells: [Int]) -> [Int] {
        var permutation = [Int](repeating: 0, count: cells.count)
        for (cell, piece) in cells.enumerated() { permutation[piece] = cell }
        return permutation
    }

    /// Solves a `grid × grid` puzzle: exhaustive for `grid² ≤ exhaustiveLimit`, beam search otherwise.
    public static func solve(_ costs: EdgeCompatibility, grid: Int, beamWidth: Int = 256) -> [Int] {
        precondition(costs.count == grid * grid, "\(costs.count) pieces do not fill a \(grid)×\(grid) grid")
        if costs.count <= exhaustiveLimit { return exhaustive(costs, grid: grid) }
        return beamSearch(costs, grid: grid, beamWidth: beamWidth)
    }

    /// The exact minimum-cost placement (branch and bound); ties go to the first found in
    /// lexicographic order of cell contents.
    public static func exhaustive(_ costs: EdgeCompatibility, grid: Int) -> [Int] {
        let n = grid * grid
        precondition(costs.count == n && n <= 20, "exhaustive search is for small grids")
        if n == 1 { return [0] }
        // Cheapest edge into each piece from the left / from above, and per cell the cheapest way
        // any piece could fill it; suffix sums bound the cost of the cells still empty.
        var minLeft = [Float](repeating: .infinity, count: n), minAbove = minLeft
        for i in 0..<n {
            for j in 0..<n where i != j {
                minLeft[j] = min(minLeft[j], costs.left[i * n + j])
                minAbove[j] = min(minAbove[j], costs.above[i * n + j])
            }
        }
        var suffix = [Float](repeating: 0, count: n + 1)
        for k in stride(from: n - 1, through: 0, by: -1) {
            var best = Float.infinity
            for p in 0..<n {
                var c: Float = 0
                if k % grid > 0 { c += minLeft[p] }
                if k >= grid { c += minAbove[p] }
                best = min(best, c)
            }
            suffix[k] = suffix[k + 1] + best
        }
        let seed = beamSearch(costs, grid: grid, beamWidth: 64)
        var bestCells = cells(from: seed)
        var bestCost = cost(cells: bestCells, grid: grid, costs: costs)
        var current = [Int](repeating: 0, count: n)
        var used = [Bool](repeating: false, count: n)
        costs.left.withUnsafeBufferPointer { left in
            costs.above.withUnsafeBufferPointer { above in
                func search(_ k: Int, _ running: Float) {
                    if k == n {
                        if running < bestCost { bestCost = running; bestCells = current }
                        return
                    }
                    let hasLeft = k % grid > 0, hasAbove = k >= grid
                    let leftPiece = hasLeft ? current[k - 1] : 0, abovePiece = hasAbove ? current[k - grid] : 0
                    for p in 0..<n where !used[p] {
                        var c = running
                        if hasLeft { c += left[leftPiece * n + p] }
                        if hasAbove { c += above[abovePiece * n + p] }
                        if c + suffix[k + 1] >= bestCost { continue }
                        used[p] = true
                        current[k] = p
                        search(k + 1, c)
                        used[p] = false
                    }
                }
                search(0, 0)
            }
        }
        return permutation(from: bestCells)
    }

    /// Row-major beam search keeping the `beamWidth` cheapest partial placements.
    public static func beamSearch(_ costs: EdgeCompatibility, grid: Int, beamWidth: Int = 256) -> [Int] {
        let n = grid * grid
        precondition(costs.count == n && n <= 64, "beam search handles up to 64 pieces")
        precondition(beamWidth >= 1, "beam width must be positive")
        struct State { var cells: [Int]; var used: UInt64; var cost: Float }
        var beam = [State(cells: [], used: 0, cost: 0)]
        for k in 0..<n {
            let hasLeft = k % grid > 0, hasAbove = k >= grid
            var candidates: [(state: Int, piece: Int, cost: Float)] = []
            candidates.reserveCapacity(beam.count * (n - k))
            for (index, state) in beam.enumerated() {
                for p in 0..<n where state.used & (1 << UInt64(p)) == 0 {
                    var c = state.cost
                    if hasLeft { c += costs.left[state.cells[k - 1] * n + p] }
                    if hasAbove { c += costs.above[state.cells[k - grid] * n + p] }
                    candidates.append((index, p, c))
                }
            }
            candidates.sort { $0.cost != $1.cost ? $0.cost < $1.cost : ($0.state, $0.piece) < ($1.state, $1.piece) }
            beam = candidates.prefix(beamWidth).map { candidate in
                var next = beam[candidate.state]
                next.cells.append(candidate.piece)
                next.used |= 1 << UInt64(candidate.piece)
                next.cost = candidate.cost
                return next
            }
        }
        return permutation(from: beam[0].cells)
    }
}
