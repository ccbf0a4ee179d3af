/// The Jonker–Volgenant shortest augmenting path algorithm on a dense row-major Double matrix.
///
/// Jonker & Volgenant, "A shortest augmenting path algorithm for dense and sparse linear assignment
/// problems", Computing 38 (1987): for a square matrix, column reduction with reduction transfer and
/// two rounds of augmenting row reduction assign most rows cheaply; every row still free is then
/// assigned by a shortest augmenting path (Dijkstra over the columns with reduced costs
/// `C[i, j] − v[j]`, using the "todo / scan / ready" column lists). Rectangular problems (rows <
/// columns) skip the initialisation and start from `v = 0`, which keeps `v ≤ 0` with `v = 0` on the
/// unassigned columns, as the rectangular dual requires (Crouse 2016, IEEE TAES 52(4)).
///
/// Only column potentials `v` are stored: the potential of row `i` is implicitly
/// `min_j (C[i, j] − v[j])`, attained at its assigned column.
enum JonkerVolgenant {
    /// Row reductions allowed per round of augmenting row reduction, per column.
    ///
    /// Unbounded, a round on uniform random costs takes about 65·n reductions at n = 1000 and 95·n
    /// at n = 2000 (each an O(n) row scan), far more than the shortest-path phase needs to finish
    /// the last rows: with 4·n the whole solve is about 4× faster at n = 1000 and 2000, and small
    /// problems (n ≤ 100 needs ≈ 2.5·n) are unaffected.
    static let rowReductionBudgetPerColumn = 4

    /// Solves `min Σ_i C[i, x[i]]` over injective `x: rows → columns`; requires `rows ≤ columns`.
    ///
    /// All pointers are caller-provided scratch: `rowToColumn` (rows), `columnToRow`, `potential`,
    /// `distance`, `columnOrder`, `predecessor` (columns each) and `freeRows` (rows).
    /// On return `rowToColumn` holds the assignment.
    static func solve(
        matrix: UnsafeMutablePointer<Double>, rows: Int, columns: Int,
        rowToColumn: UnsafeMutablePointer<Int>, columnToRow: UnsafeMutablePointer<Int>,
        potential: UnsafeMutablePointer<Double>, distance: UnsafeMutablePointer<Double>,
        freeRows: UnsafeMutablePointer<Int>, columnOrder: UnsafeMutablePointer<Int>,
        predecessor: UnsafeMutablePointer<Int>
    ) {
        precondition(rows <= columns)
        if rows == 0 { return }
        if columns == 1 {
            rowToColumn[0] = 0
            return
        }
        var freeCount: Int
        if rows == columns {
            freeCount = columnReduction(matrix: matrix, n: columns, rowToColumn: rowToColumn,
                                        columnToRow: columnToRow, potential: potential, freeRows: freeRows)
            for _ in 0..<2 where freeCount > 0 {
                freeCount = augmentingRowReduction(matrix: matrix, n: columns, freeCount: freeCount,
                                                   freeRows: freeRows, rowToColumn: rowToColumn,
                                                   columnToRow: columnToRow, potential: potential,
                                                   budget: rowReductionBudgetPerColumn &* columns)
            }
        } else {
            for i in 0..<rows { rowToColumn[i] = -1; freeRows[i] = i }
            for j in 0..<columns { columnToRow[j] = -1; potential[j] = 0 }
            freeCount = rows
        }
        for f in 0..<freeCount {
            augment(matrix: matrix, columns: columns, freeRow: freeRows[f], rowToColumn: rowToColumn,
                    columnToRow: columnToRow, potential: potential, distance: distance,
                    columnOrder: columnOrder, predecessor: predecessor)
        }
    }

    /// Column reduction and reduction transfer (JV 1987, procedures COLUMN REDUCTION and
    /// REDUCTION TRANSFER). Returns the number of free rows, listed in `freeRows`.
    @inline(__always)
    static func columnReduction(
        matrix: UnsafeMutablePointer<Double>, n: Int,
        rowToColumn x: UnsafeMutablePointer<Int>, columnToRow y: UnsafeMutablePointer<Int>,
        potential v: UnsafeMutablePointer<Double>, freeRows: UnsafeMutablePointer<Int>
    ) -> Int {
        // v[j] = min_i C[i, j] (the lowest such i on ties), scanning rows so memory access stays contiguous.
        for j in 0..<n { v[j] = matrix[j]; y[j] = 0 }
        for i in 1..<n {
            let row = matrix + i * n
            for j in 0..<n where row[j] < v[j] {
                v[j] = row[j]
                y[j] = i
            }
        }
        // The last column (in JV's downward order) choosing a row gets it; later claims mark the row
        // as shared (x = -2 - j) so that its reduction transfer is skipped.
        for i in 0..<n { x[i] = -1 }
        var j = n - 1
        while j >= 0 {
            let i = y[j]
            if x[i] == -1 {
                x[i] = j
            } else {
                if x[i] >= 0 { x[i] = -2 - x[i] }
                y[j] = -1
            }
            j -= 1
        }
        var freeCount = 0
        for i in 0..<n {
            let assigned = x[i]
            if assigned == -1 {
                freeRows[freeCount] = i
                freeCount += 1
            } else if assigned <= -2 {
                x[i] = -2 - assigned
            } else {
                // Row i is the only claimant of its column: lower v there by the row's second-best
                // reduced cost (≥ 0), which keeps dual feasibility and makes later rows avoid it.
                let row = matrix + i * n
                var second = Double.infinity
                for k in 0..<n where k != assigned {
                    second = Swift.min(second, row[k] - v[k])
                }
                v[assigned] -= second
            }
        }
        return freeCount
    }

    /// One round of augmenting row reduction (JV 1987, procedure AUGMENTING ROW REDUCTION).
    ///
    /// Each free row takes its cheapest column `j1` under reduced costs, lowering `v[j1]` by the gap to
    /// its second cheapest so the displaced row (if any) is re-examined at once. When the gap is zero
    /// (ties) or too small to change `v[j1]` in Double, the row takes the second column instead and the
    /// displaced row waits for the next round. Once `budget` reductions are spent (or the
    /// `reductions < current · n` bound of the `lap` package, which ends pathological cycles, is hit)
    /// a displaced row is left for the shortest augmenting path phase.
    /// Returns the number of rows still free, listed in `freeRows`.
    @inline(__always)
    static func augmentingRowReduction(
        matrix: UnsafeMutablePointer<Double>, n: Int, freeCount: Int, freeRows: UnsafeMutablePointer<Int>,
        rowToColumn x: UnsafeMutablePointer<Int>, columnToRow y: UnsafeMutablePointer<Int>,
        potential v: UnsafeMutablePointer<Double>, budget: Int
    ) -> Int {
        var current = 0
        var newFreeCount = 0
        var reductions = 0
        while current < freeCount {
            let i = freeRows[current]
            current &+= 1
            reductions &+= 1
            let row = matrix + i &* n
            var (u1, j1, u2) = twoSmallestReducedCosts(row: row, potential: v, count: n)
            var i0 = y[j1]
            let lowered = v[j1] - (u2 - u1)
            let lowers = lowered < v[j1]
            if reductions < current &* n && reductions < budget {
                if lowers {
                    v[j1] = lowered
                } else if i0 >= 0 {
                    j1 = firstColumn(row: row, potential: v, count: n, reducedCost: u2, excluding: j1)
                    i0 = y[j1]
                }
                if i0 >= 0 {
                    if lowers {
                        current &-= 1
                        freeRows[current] = i0
                    } else {
                        freeRows[newFreeCount] = i0
                        newFreeCount &+= 1
                    }
                }
            } else if i0 >= 0 {
                freeRows[newFreeCount] = i0
                newFreeCount &+= 1
            }
            x[i] = j1
            y[j1] = i
        }
        return newFreeCount
    }

    /// The smallest and second smallest of `h[j] = row[j] − v[j]` over `j < count` (`count ≥ 2`), and
    /// the first column `j1` with `h[j1] = u1`; `u1 ≤ u2`, and `u1 == u2` when the minimum is tied.
    ///
    /// This scan is the bulk of augmenting row reduction. The values come from a branch-free SIMD
    /// pass (`second = min(second, max(best, h))`, `best = min(best, h)` per lane); `j1` is then
    /// located by comparing the same differences, recomputed bit for bit, for equality.
    @inline(__always)
    static func twoSmallestReducedCosts(
        row: UnsafeMutablePointer<Double>, potential v: UnsafeMutablePointer<Double>, count n: Int
    ) -> (u1: Double, j1: Int, u2: Double) {
        var u1 = Double.infinity, u2 = Double.infinity
        if n < 16 {
            var j1 = -1
            for j in 0..<n {
                let h = row[j] - v[j]
                if h < u2 {
                    if h >= u1 {
                        u2 = h
                    } else {
                        u2 = u1
                        u1 = h
                        j1 = j
                    }
                }
            }
            return (u1, j1, u2)
        }
        typealias Lanes = SIMD4<Double>
        let rowBytes = UnsafeRawPointer(row)
        let potentialBytes = UnsafeRawPointer(v)
        var bestA = Lanes(repeating: .infinity), secondA = bestA
        var bestB = bestA, secondB = bestA
        var j = 0
        while j &+ 8 <= n {
            let offset = j &* 8
            let hA = rowBytes.loadUnaligned(fromByteOffset: offset, as: Lanes.self)
                - potentialBytes.loadUnaligned(fromByteOffset: offset, as: Lanes.self)
            let hB = rowBytes.loadUnaligned(fromByteOffset: offset &+ 32, as: Lanes.self)
                - potentialBytes.loadUnaligned(fromByteOffset: offset &+ 32, as: Lanes.self)
            secondA = lanewiseMinimum(secondA, lanewiseMaximum(bestA, hA))
            bestA = lanewiseMinimum(bestA, hA)
            secondB = lanewiseMinimum(secondB, lanewiseMaximum(bestB, hB))
            bestB = lanewiseMinimum(bestB, hB)
            j &+= 8
        }
        for lane in 0..<4 {
            offer(bestA[lane], u1: &u1, u2: &u2)
            offer(secondA[lane], u1: &u1, u2: &u2)
            offer(bestB[lane], u1: &u1, u2: &u2)
            offer(secondB[lane], u1: &u1, u2: &u2)
        }
        while j < n {
            offer(row[j] - v[j], u1: &u1, u2: &u2)
            j &+= 1
        }
        return (u1, firstColumn(row: row, potential: v, count: n, reducedCost: u1, excluding: -1), u2)
    }

    /// The first column `j ≠ excluded` with `row[j] − v[j] == reducedCost`, which must exist.
    @inline(__always)
    static func firstColumn(
        row: UnsafeMutablePointer<Double>, potential v: UnsafeMutablePointer<Double>, count n: Int,
        reducedCost: Double, excluding excluded: Int
    ) -> Int {
        typealias Lanes = SIMD4<Double>
        let rowBytes = UnsafeRawPointer(row)
        let potentialBytes = UnsafeRawPointer(v)
        let target = Lanes(repeating: reducedCost)
        var j = 0
        while j &+ 4 <= n {
            let h = rowBytes.loadUnaligned(fromByteOffset: j &* 8, as: Lanes.self)
                - potentialBytes.loadUnaligned(fromByteOffset: j &* 8, as: Lanes.self)
            if any(h .== target) { break }
            j &+= 4
        }
        while j < n {
            if row[j] - v[j] == reducedCost && j != excluded { return j }
            j &+= 1
        }
        preconditionFailure("reduced cost \(reducedCost) not found again in its own row")
    }

    /// `min` per lane for finite values (the standard library's `pointwiseMin` is not inlined and
    /// handles NaN, which the solver has already excluded).
    @inline(__always)
    static func lanewiseMinimum(_ a: SIMD4<Double>, _ b: SIMD4<Double>) -> SIMD4<Double> {
        a.replacing(with: b, where: b .< a)
    }

    /// `max` per lane for finite values.
    @inline(__always)
    static func lanewiseMaximum(_ a: SIMD4<Double>, _ b: SIMD4<Double>) -> SIMD4<Double> {
        a.replacing(with: b, where: b .> a)
    }

    /// Updates a running (smallest, second smallest) pair of values with one candidate.
    @inline(__always)
    static func offer(_ value: Double, u1: inout Double, u2: inout Double) {
        if value < u2 {
            if value >= u1 {
                u2 = value
            } else {
                u2 = u1
                u1 = value
            }
        }
    }

    /// Assigns `freeRow` along a shortest augmenting path (JV 1987, procedure AUGMENTATION).
    ///
    /// `columnOrder` is partitioned as `[ready | scan | todo]`: ready columns have final distances,
    /// scan columns share the current minimum distance and wait to relax their rows, todo columns
    /// carry tentative distances. The search stops at the first free column reached at the minimum
    /// distance; ready columns then get `v[j] += d[j] − d_min`, and the path is flipped.
    @inline(__always)
    static func augment(
        matrix: UnsafeMutablePointer<Double>, columns n: Int, freeRow: Int,
        rowToColumn x: UnsafeMutablePointer<Int>, columnToRow y: UnsafeMutablePointer<Int>,
        potential v: UnsafeMutablePointer<Double>, distance d: UnsafeMutablePointer<Double>,
        columnOrder order: UnsafeMutablePointer<Int>, predecessor: UnsafeMutablePointer<Int>
    ) {
        let start = matrix + freeRow * n
        for j in 0..<n {
            order[j] = j
            predecessor[j] = freeRow
            d[j] = start[j] - v[j]
        }
        var low = 0          // order[0..<low]: ready
        var high = 0         // order[low..<high]: scan list, all at distance `minimum`
        var ready = 0
        var minimum = 0.0
        var sink = -1
        search: while true {
            if low == high {
                // Move every todo column at the smallest tentative distance to the scan list.
                ready = low
                high = low + 1
                minimum = d[order[low]]
                var k = high
                while k < n {
                    let j = order[k]
                    let dj = d[j]
                    if dj <= minimum {
                        if dj < minimum {
                            high = low
                            minimum = dj
                        }
                        order[k] = order[high]
                        order[high] = j
                        high += 1
                    }
                    k += 1
                }
                for k in low..<high where y[order[k]] < 0 {
                    sink = order[k]
                    break search
                }
            }
            // Relax the row assigned to the next scan column over the todo columns.
            let j = order[low]
            low += 1
            let i = y[j]
            let row = matrix + i * n
            let h = row[j] - v[j] - minimum
            var k = high
            while k < n {
                let column = order[k]
                let reduced = row[column] - v[column] - h
                if reduced < d[column] {
                    d[column] = reduced
                    predecessor[column] = i
                    if reduced == minimum {
                        if y[column] < 0 {
                            sink = column
                            break search
                        }
                        order[k] = order[high]
                        order[high] = column
                        high += 1
                    }
                }
                k += 1
            }
        }
        for k in 0..<ready {
            let j = order[k]
            v[j] += d[j] - minimum
        }
        var j = sink
        while true {
            let i = predecessor[j]
            y[j] = i
            let previous = x[i]
            x[i] = j
            if i == freeRow { break }
            j = previous
        }
    }
}
