import TensorKit

/// Bad permutation lists, permutation matrices, or mismatched lengths in permutation metrics.
public enum PermutationError: Error, Equatable, Sendable {
    /// `permutation[position] = value` lies outside `0..<count`.
    case valueOutOfRange(position: Int, value: Int, count: Int)
    /// `value` appears at two positions.
    case duplicateValue(value: Int, firstPosition: Int, secondPosition: Int)
    /// Two lists (or a list and a tensor's leading dimension) that must have equal lengths do not.
    case lengthMismatch(expected: Int, found: Int)
    /// A permutation matrix must be a square rank-2 tensor.
    case notSquareMatrix(shape: [Int])
    /// A permutation matrix entry other than 0 or 1, or a row or column without exactly one 1.
    case notPermutationMatrix(row: Int, column: Int, value: Float)
}

/// Helpers for permutations written as lists, in this project's convention (PAPERS.md §1):
/// `permutation[i] = j` ⇔ `P[i, j] = 1` — item `i` (a scrambled piece, an unsorted number) goes to
/// slot `j` (a grid cell, a sorted position), and `out[j] = Σ_i P[i, j] · item[i]`.
///
/// Every function validates its input and throws `PermutationError` for a list that is not a
/// permutation of `0..<n`.
public enum Permutation {
    /// Checks that `permutation` is a permutation of `0..<permutation.count`.
    ///
    /// - Throws: `PermutationError.valueOutOfRange` or `.duplicateValue` for the first offending position.
    /// - Complexity: O(n) time; O(n) scratch.
    public static func validate(_ permutation: [Int]) throws {
        let n = permutation.count
        var position = [Int](repeating: -1, count: n)
        for (i, j) in permutation.enumerated() {
            guard j >= 0 && j < n else { throw PermutationError.valueOutOfRange(position: i, value: j, count: n) }
            guard position[j] < 0 else {
                throw PermutationError.duplicateValue(value: j, firstPosition: position[j], secondPosition: i)
            }
            position[j] = i
        }
    }

    /// Whether `permutation` is a permutation of `0..<permutation.count`.
    public static func isValid(_ permutation: [Int]) -> Bool {
        (try? validate(permutation)) != nil
    }

    /// The identity permutation `[0, 1, …, n − 1]`.
    public static func identity(_ n: Int) -> [Int] { Array(0..<max(n, 0)) }

    /// The inverse permutation: `inverse[j] = i` ⇔ `permutation[i] = j` (the matrix `Pᵀ`).
    ///
    /// - Throws: `PermutationError` if `permutation` is not a permutation.
    public static func inverse(_ permutation: [Int]) throws -> [Int] {
        try validate(permutation)
        var inverse = [Int](repeating: 0, count: permutation.count)
        for (i, j) in permutation.enumerated() { inverse[j] = i }
        return inverse
    }

    /// The permutation equivalent to applying `first`, then `second`:
    /// `composed[i] = second[first[i]]`, so `apply(composed, to: x) == apply(second, to: apply(first, to: x))`
    /// and `P_composed = P_first · P_second`.
    ///
    /// - Throws: `PermutationError` if either is not a permutation, `.lengthMismatch` if their lengths differ.
    public static func compose(_ first: [Int], then second: [Int]) throws -> [Int] {
        try validate(first)
        try validate(second)
        guard first.count == second.count else {
            throw PermutationError.lengthMismatch(expected: first.count, found: second.count)
        }
        return first.map { second[$0] }
    }

    /// Moves each item to its slot: `out[permutation[i]] = items[i]`, i.e. `out[j] = Σ_i P[i, j] · items[i]`
    /// (the reconstruction of a jigsaw puzzle from its scrambled pieces).
    ///
    /// - Throws: `PermutationError` if `permutation` is not a permutation, `.lengthMismatch` if the counts differ.
    public static func apply<Element>(_ permutation: [Int], to items: [Element]) throws -> [Element] {
        try validate(permutation)
        guard items.count == permutation.count else {
            throw PermutationError.lengthMismatch(expected: permutation.count, found: items.count)
        }
        guard let first = items.first else { return [] }
        var out = [Element](repeating: first, count: items.count)
        for (i, j) in permutation.enumerated() { out[j] = items[i] }
        return out
    }

    /// Moves the slices along the first axis of a tensor: `out[permutation[i], …] = items[i, …]`
    /// (for `[n, C, H, W]` pieces, the reconstruction `out[j] = Σ_i P[i, j] · piece[i]`).
    ///
    /// - Throws: `PermutationError` if `permutation` is not a permutation or does not match `items.shape[0]`.
    public static func apply(_ permutation: [Int], toSlicesOf items: Tensor) throws -> Tensor {
        try validate(permutation)
        guard items.rank >= 1, items.shape[0] == permutation.count else {
            throw PermutationError.lengthMismatch(expected: permutation.count, found: items.rank >= 1 ? items.shape[0] : 0)
        }
        let n = permutation.count
        let sliceSize = n == 0 ? 0 : items.count / n
        var out = Tensor(shape: items.shape)
        items.withUnsafeBufferPointer { source in
            out.withUnsafeMutableBufferPointer { destination in
                for (i, j) in permutation.enumerated() where sliceSize > 0 {
                    let from = UnsafeBufferPointer(rebasing: source[(i * sliceSize)..<((i + 1) * sliceSize)])
                    _ = UnsafeMutableBufferPointer(rebasing: destination[(j * sliceSize)..<((j + 1) * sliceSize)])
                        .initialize(from: from)
                }
            }
        }
        return out
    }

    /// The permutation matrix `P [n, n]` with `P[i, j] = 1` iff `permutation[i] = j`.
    ///
    /// - Throws: `PermutationError` if `permutation` is not a permutation.
    public static func matrix(_ permutation: [Int]) throws -> Tensor {
        try validate(permutation)
        let n = permutation.count
        var matrix = Tensor(shape: [n, n])
        for (i, j) in permutation.enumerated() { matrix.storage[i * n + j] = 1 }
        return matrix
    }

    /// The list form of a permutation matrix: `permutation[i]` is the column of the 1 in row `i`.
    ///
    /// The matrix must hold only exact 0s and 1s, one 1 per row and per column (a hard matching, not
    /// a doubly-stochastic Sinkhorn output — round those with `LinearAssignment.matchings(scores:)`).
    ///
    /// - Parameter matrix: `[n, n]`.
    /// - Throws: `.notSquareMatrix` for another shape; `.notPermutationMatrix(row:column:value:)` naming
    ///   the first entry that is not 0 or 1, the second 1 of a row or column, or `(row, -1, 0)` for a
    ///   row without a 1.
    public static func list(fromMatrix matrix: Tensor) throws -> [Int] {
        guard matrix.rank == 2, matrix.shape[0] == matrix.shape[1] else {
            throw PermutationError.notSquareMatrix(shape: matrix.shape)
        }
        let n = matrix.shape[0]
        var permutation = [Int](repeating: -1, count: n)
        var columnTaken = [Bool](repeating: false, count: n)
        for i in 0..<n {
            for j in 0..<n {
                let value = matrix.storage[i * n + j]
                if value == 0 { continue }
                guard value == 1, permutation[i] < 0, !columnTaken[j] else {
                    throw PermutationError.notPermutationMatrix(row: i, column: j, value: value)
                }
                permutation[i] = j
                columnTaken[j] = true
            }
            guard permutation[i] >= 0 else { throw PermutationError.notPermutationMatrix(row: i, column: -1, value: 0) }
        }
        return permutation
    }
}
