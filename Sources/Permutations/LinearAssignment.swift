import TensorKit

/// Whether a linear assignment minimises the total cost or maximises the total score.
public enum AssignmentObjective: Sendable, Equatable {
    /// Minimise `Σ_i C[i, permutation[i]]` (scipy's `linear_sum_assignment(C)`).
    case minimise
    /// Maximise `Σ_i X[i, permutation[i]]`: the matching `M(X)` of Mena et al. 2018, §2
    /// (scipy's `linear_sum_assignment(X, maximize=True)`, or `linear_sum_assignment(-X)`).
    case maximise
}

/// Bad input to a linear assignment.
public enum AssignmentError: Error, Equatable, Sendable {
    /// The cost at `(row, column)` is NaN or ±infinity; no assignment is defined.
    case nonFiniteCost(row: Int, column: Int)
    /// The flat cost buffer holds `found` elements where `rows × columns = expected`.
    case elementCountMismatch(expected: Int, found: Int)
    /// A dimension is negative.
    case negativeDimension(rows: Int, columns: Int)
    /// A tensor of the wrong rank or a batch of non-square matrices; the expected shape is named.
    case invalidShape(found: [Int], expected: String)
    /// The destination buffer of an in-place solve does not have one slot per row.
    case destinationCountMismatch(expected: Int, found: Int)
}

/// The optimal solution of a linear assignment problem: which column each row is assigned to,
/// and the total of the assigned entries.
///
/// For an `m × n` matrix with `m ≤ n` every row is assigned to a distinct column; with `m > n`
/// every column receives a distinct row and the `m − n` rows left over hold `-1`.
/// For a square matrix `permutation` is a permutation of `0..<n` in this project's convention:
/// `permutation[i] = j` ⇔ `P[i, j] = 1` (row `i`, e.g. a scrambled piece, goes to column `j`, a
/// grid cell).
public struct LinearAssignment: Equatable, Sendable {
    /// `permutation[i]` is the column assigned to row `i` (`-1` for a row left over when rows > columns).
    public var permutation: [Int]
    /// `Σ_i C[i, permutation[i]]` over the assigned rows, summed in Double from the original entries
    /// (for `.maximise` this is the total score, not its negation).
    public var cost: Double

    public init(permutation: [Int], cost: Double) {
        self.permutation = permutation
        self.cost = cost
    }
}

extension LinearAssignment {
    /// Solves the linear assignment problem on an `[m, n]` float tensor.
    ///
    /// Finds `argmin` (or `argmax`) over one-to-one assignments of `Σ_i C[i, permutation[i]]` with
    /// the Jonker–Volgenant algorithm (Jonker & Volgenant 1987: column reduction, augmenting row
    /// reduction, shortest augmenting paths by a dense Dijkstra), in Double precision.
    ///
    /// - Parameters:
    ///   - costs: a rank-2 tensor `[m, n]`; any `m`, `n` ≥ 0 (empty matrices give an empty assignment).
    ///   - objective: `.minimise` (default) or `.maximise`.
    /// - Returns: the assignment and its total.
    /// - Throws: `AssignmentError.invalidShape` for a tensor that is not rank 2;
    ///   `AssignmentError.nonFiniteCost(row:column:)` for the first NaN or infinite entry in row-major order.
    /// - Complexity: O(n³) time for `n × n` (O(m²·n) for rectangular), O(m·n) extra memory.
    public static func solve(costs: Tensor, objective: AssignmentObjective = .minimise) throws -> LinearAssignment {
        guard costs.rank == 2 else { throw AssignmentError.invalidShape(found: costs.shape, expected: "[rows, columns]") }
        return try costs.withUnsafeBufferPointer { buffer in
            try solveBuffer(buffer, rows: costs.shape[0], columns: costs.shape[1], objective: objective)
        }
    }

    /// Solves the linear assignment problem on a row-major `rows × columns` Double matrix.
    ///
    /// - Parameters:
    ///   - costs: `rows · columns` entries, row-major (`C[i, j] = costs[i * columns + j]`).
    ///   - rows: the number of rows `m` ≥ 0.
    ///   - columns: the number of columns `n` ≥ 0.
    ///   - objective: `.minimise` (default) or `.maximise`.
    /// - Returns: the assignment and its total.
    /// - Throws: `AssignmentError.negativeDimension`, `.elementCountMismatch`, `.nonFiniteCost(row:column:)`.
    /// - Complexity: O(n³) time for `n × n` (O(m²·n) for rectangular), O(m·n) extra memory.
    public static func solve(costs: [Double], rows: Int, columns: Int,
                             objective: AssignmentObjective = .minimise) throws -> LinearAssignment {
        try costs.withUnsafeBufferPointer { buffer in
            try solveBuffer(buffer, rows: rows, columns: columns, objective: objective)
        }
    }

    /// Solves the linear assignment problem on a row-major `rows × columns` Double buffer.
    ///
    /// The same as `solve(costs:rows:columns:objective:)` for callers that already hold a buffer.
    public static func solve(costs: UnsafeBufferPointer<Double>, rows: Int, columns: Int,
                             objective: AssignmentObjective = .minimise) throws -> LinearAssignment {
        try solveBuffer(costs, rows: rows, columns: columns, objective: objective)
    }

    /// Solves the linear assignment problem and writes the row-to-column assignment into a
    /// caller-owned buffer, without allocating on the heap for small problems.
    ///
    /// The scratch space (the Double copy of the matrix and the solver's vectors, about
    /// `8·m·n + 56·max(m, n)` bytes) is a temporary allocation that lives on the stack when it fits.
    ///
    /// - Parameters:
    ///   - costs: `rows · columns` entries, row-major.
    ///   - rows: the number of rows `m` ≥ 0.
    ///   - columns: the number of columns `n` ≥ 0.
    ///   - objective: `.minimise` or `.maximise`.
    ///   - assignment: `rows` slots; slot `i` receives the column of row `i` (`-1` when left over).
    /// - Returns: the total of the assigned entries.
    /// - Throws: as `solve(costs:rows:columns:objective:)`, and `.destinationCountMismatch`.
    public static func solve<Element: BinaryFloatingPoint>(
        costs: UnsafeBufferPointer<Element>, rows: Int, columns: Int, objective: AssignmentObjective,
        into assignment: UnsafeMutableBufferPointer<Int>
    ) throws -> Double {
        try validate(count: costs.count, rows: rows, columns: columns)
        guard assignment.count == rows else {
            throw AssignmentError.destinationCountMismatch(expected: rows, found: assignment.count)
        }
        return try solveValidated(costs, rows: rows, columns: columns, objective: objective, into: assignment)
    }

    /// Solves one assignment per matrix of a batch of square score or cost matrices.
    ///
    /// - Parameters:
    ///   - costs: `[B, n, n]` (or a single `[n, n]`, treated as `B = 1`).
    ///   - objective: `.maximise` for network scores (the matching `M(X)`), `.minimise` for costs.
    /// - Returns: `B` assignments, one per batch item, in order.
    /// - Throws: `AssignmentError.invalidShape` unless the tensor is `[B, n, n]` or `[n, n]` with equal
    ///   last two dimensions; `.nonFiniteCost(row:column:)` (row and column within the offending item).
    /// - Complexity: O(B·n³).
    public static func solveBatch(costs: Tensor, objective: AssignmentObjective) throws -> [LinearAssignment] {
        let (batch, n) = try batchShape(costs.shape)
        return try costs.withUnsafeBufferPointer { buffer in
            var results: [LinearAssignment] = []
            results.reserveCapacity(batch)
            for b in 0..<batch {
                let item = UnsafeBufferPointer(rebasing: buffer[(b * n * n)..<((b + 1) * n * n)])
                results.append(try solveBuffer(item, rows: n, columns: n, objective: objective))
            }
            return results
        }
    }

    /// The hard matching `M(X)` of each score matrix in a batch: the permutation maximising
    /// `trace(Pᵀ X) = Σ_i X[i, permutation[i]]` (Mena et al. 2018, §2; the reference code's
    /// `linear_sum_assignment(-X)`).
    ///
    /// - Parameter scores: `[B, n, n]` (or a single `[n, n]`, treated as `B = 1`).
    /// - Returns: `B` permutations; `permutations[b][i] = j` puts piece `i` of item `b` in cell `j`.
    /// - Throws: as `solveBatch(costs:objective:)`.
    public static func matchings(scores: Tensor) throws -> [[Int]] {
        let (batch, n) = try batchShape(scores.shape)
        return try scores.withUnsafeBufferPointer { buffer in
            var results: [[Int]] = []
            results.reserveCapacity(batch)
            for b in 0..<batch {
                let item = UnsafeBufferPointer(rebasing: buffer[(b * n * n)..<((b + 1) * n * n)])
                var permutation = [Int](repeating: -1, count: n)
                _ = try permutation.withUnsafeMutableBufferPointer { destination in
                    try solveValidated(item, rows: n, columns: n, objective: .maximise, into: destination)
                }
                results.append(permutation)
            }
            return results
        }
    }

    // MARK: - Plumbing

    private static func batchShape(_ shape: [Int]) throws -> (batch: Int, n: Int) {
        if shape.count == 2, shape[0] == shape[1] { return (1, shape[0]) }
        if shape.count == 3, shape[1] == shape[2] { return (shape[0], shape[1]) }
        throw AssignmentError.invalidShape(found: shape, expected: "[B, n, n] or [n, n]")
    }

    private static func validate(count: Int, rows: Int, columns: Int) throws {
        guard rows >= 0, columns >= 0 else { throw AssignmentError.negativeDimension(rows: rows, columns: columns) }
        let (expected, overflow) = rows.multipliedReportingOverflow(by: columns)
        guard !overflow, expected == count else {
            throw AssignmentError.elementCountMismatch(expected: overflow ? Int.max : expected, found: count)
        }
    }

    @inline(__always)
    private static func solveBuffer<Element: BinaryFloatingPoint>(
        _ costs: UnsafeBufferPointer<Element>, rows: Int, columns: Int, objective: AssignmentObjective
    ) throws -> LinearAssignment {
        try validate(count: costs.count, rows: rows, columns: columns)
        var permutation = [Int](repeating: -1, count: rows)
        let total = try permutation.withUnsafeMutableBufferPointer { destination in
            try solveValidated(costs, rows: rows, columns: columns, objective: objective, into: destination)
        }
        return LinearAssignment(permutation: permutation, cost: total)
    }

    /// Copies the matrix into a Double scratch buffer (negated for `.maximise`, transposed when there
    /// are more rows than columns so the solver always sees `rows ≤ columns`), solves, and maps back.
    private static func solveValidated<Element: BinaryFloatingPoint>(
        _ costs: UnsafeBufferPointer<Element>, rows m: Int, columns n: Int, objective: AssignmentObjective,
        into assignment: UnsafeMutableBufferPointer<Int>
    ) throws -> Double {
        precondition(costs.count == m * n && assignment.count == m)
        let transposed = m > n
        let r = transposed ? n : m          // solver rows
        let c = transposed ? m : n          // solver columns, c ≥ r
        let sign: Double = objective == .maximise ? -1 : 1
        let doubles = r * c + 2 * c
        let integers = 2 * r + 3 * c
        let byteCount = doubles * MemoryLayout<Double>.stride + integers * MemoryLayout<Int>.stride
        return try withUnsafeTemporaryAllocation(byteCount: max(byteCount, 1),
                                                 alignment: MemoryLayout<Double>.alignment) { raw in
            let base = raw.baseAddress!
            let matrix = base.bindMemory(to: Double.self, capacity: doubles)
            let intBase = (base + doubles * MemoryLayout<Double>.stride).bindMemory(to: Int.self, capacity: integers)

            // Copy with the objective's sign. `value · 0` is 0 for finite values and NaN otherwise, so
            // one running sum detects NaN/±inf without a branch per entry; the offender is located
            // afterwards.
            var largest = 0.0
            var probe = 0.0
            if let source = costs.baseAddress {
                if transposed {
                    for i in 0..<m {
                        let sourceRow = source + i &* n
                        for j in 0..<n {
                            let value = Double(sourceRow[j])
                            probe += value * 0
                            largest = Swift.max(largest, Swift.abs(value))
                            matrix[j &* c &+ i] = sign * value
                        }
                    }
                } else {
                    for k in 0..<(m &* n) {
                        let value = Double(source[k])
                        probe += value * 0
                        largest = Swift.max(largest, Swift.abs(value))
                        matrix[k] = sign * value
                    }
                }
            }
            if probe.isNaN, let source = costs.baseAddress {
                let offset = (0..<(m * n)).first { !Double(source[$0]).isFinite } ?? 0
                throw AssignmentError.nonFiniteCost(row: offset / n, column: offset % n)
            }
            // Potentials and path lengths can reach about 4·n·max|C|; an exact power-of-two rescale
            // keeps them finite for entries near Double's range without changing the optimum.
            let limit = 0x1p900
            if largest > limit {
                let scale = Double(sign: .plus, exponent: 900 - largest.exponent, significand: 1)
                for k in 0..<(r * c) { matrix[k] *= scale }
            }

            let rowToColumn = intBase
            let columnToRow = intBase + r
            let freeRows = intBase + r + c
            let columnOrder = intBase + 2 * r + c
            let predecessor = intBase + 2 * r + 2 * c
            let potential = matrix + r * c
            let distance = matrix + r * c + c
            JonkerVolgenant.solve(
                matrix: matrix, rows: r, columns: c,
                rowToColumn: rowToColumn, columnToRow: columnToRow, potential: potential, distance: distance,
                freeRows: freeRows, columnOrder: columnOrder, predecessor: predecessor)

            let source = costs.baseAddress
            var total = 0.0
            if transposed {
                for i in 0..<m { assignment[i] = -1 }
                for j in 0..<n {
                    let i = rowToColumn[j]
                    assignment[i] = j
                    total += Double(source.unsafelyUnwrapped[i * n + j])
                }
            } else {
                for i in 0..<m {
                    let j = rowToColumn[i]
                    assignment[i] = j
                    total += Double(source.unsafelyUnwrapped[i * n + j])
                }
            }
            return total
        }
    }
}
