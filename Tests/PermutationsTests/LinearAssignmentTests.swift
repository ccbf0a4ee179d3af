import Foundation
import Permutations
import TensorKit
import Testing

// MARK: - Independent references

/// The optimum over all one-to-one assignments by exhaustive search (rows ≤ 8, columns ≤ 8).
///
/// Sums each candidate in row order, as `rowOrderTotal` does, so integer-valued matrices compare exactly.
private func bruteForceOptimum(_ costs: [Double], rows m: Int, columns n: Int, maximise: Bool) -> Double {
    var best = maximise ? -Double.infinity : Double.infinity
    let assigned = min(m, n)
    func visit(_ i: Int, _ used: Int, _ skipsLeft: Int, _ total: Double, _ count: Int) {
        if i == m {
            if count == assigned { best = maximise ? max(best, total) : min(best, total) }
            return
        }
        if skipsLeft > 0 { visit(i + 1, used, skipsLeft - 1, total, count) }
        for j in 0..<n where used & (1 << j) == 0 {
            visit(i + 1, used | (1 << j), skipsLeft, total + costs[i * n + j], count + 1)
        }
    }
    visit(0, 0, m - assigned, 0, 0)
    return m * n == 0 ? 0 : best
}

/// `Σ_i C[i, assignment[i]]` over assigned rows, in row order.
private func rowOrderTotal(_ costs: [Double], columns n: Int, _ assignment: [Int]) -> Double {
    var total = 0.0
    for (i, j) in assignment.enumerated() where j >= 0 { total += costs[i * n + j] }
    return total
}

/// The classic O(n³) Hungarian method with row and column potentials (Kuhn–Munkres in the
/// formulation of e-maxx.ru "Hungarian algorithm"), minimising; requires rows ≤ columns.
private func hungarianOptimum(_ costs: [Double], rows m: Int, columns n: Int) -> (assignment: [Int], total: Double) {
    precondition(m <= n)
    var u = [Double](repeating: 0, count: m + 1)
    var v = [Double](repeating: 0, count: n + 1)
    var p = [Int](repeating: 0, count: n + 1)
    var way = [Int](repeating: 0, count: n + 1)
    for i in 1...max(m, 1) where m > 0 {
        p[0] = i
        var j0 = 0
        var minimum = [Double](repeating: .infinity, count: n + 1)
        var used = [Bool](repeating: false, count: n + 1)
        repeat {
            used[j0] = true
            let i0 = p[j0]
            var delta = Double.infinity
            var j1 = 0
            for j in 1...n where !used[j] {
                let current = costs[(i0 - 1) * n + (j - 1)] - u[i0] - v[j]
                if current < minimum[j] { minimum[j] = current; way[j] = j0 }
                if minimum[j] < delta { delta = minimum[j]; j1 = j }
            }
            for j in 0...n {
                if used[j] { u[p[j]] += delta; v[j] -= delta } else { minimum[j] -= delta }
            }
            j0 = j1
        } while p[j0] != 0
        repeat {
            let j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
        } while j0 != 0
    }
    var assignment = [Int](repeating: -1, count: m)
    for j in 1...max(n, 1) where n > 0 && p[j] != 0 { assignment[p[j] - 1] = j - 1 }
    return (assignment, rowOrderTotal(costs, columns: n, assignment))
}

private func isValidAssignment(_ assignment: [Int], rows m: Int, columns n: Int) -> Bool {
    guard assignment.count == m else { return false }
    var seen = Set<Int>()
    for j in assignment where j >= 0 {
        guard j < n, seen.insert(j).inserted else { return false }
    }
    return seen.count == min(m, n) && assignment.allSatisfy { $0 >= -1 }
}

/// Kinds of matrices the exhaustive sweep draws.
private enum MatrixKind: CaseIterable {
    case uniform, smallIntegers, signedIntegersWithZeros, constant, huge, tiny, hugeAndTiny, negative, nearDoubleMax

    /// Whether every total is an exactly representable integer (then totals compare exactly).
    var isIntegral: Bool { self == .smallIntegers || self == .signedIntegersWithZeros || self == .constant }

    func draw(_ count: Int, _ generator: inout SeededGenerator) -> [Double] {
        (0..<count).map { _ in
            switch self {
            case .uniform: return generator.nextUniformDouble()
            case .smallIntegers: return Double(generator.nextInt(below: 3))
            case .signedIntegersWithZeros:
                // Zeros of both signs among small signed integers.
                let value = generator.nextInt(below: 7) - 3
                return value == 0 ? (generator.nextInt(below: 2) == 0 ? 0.0 : -0.0) : Double(value)
            case .constant: return generator.nextInt(below: 2) == 0 ? 0.0 : -0.0
            case .huge: return (generator.nextUniformDouble() - 0.5) * 1e30
            case .tiny: return (generator.nextUniformDouble() - 0.5) * 1e-30
            case .hugeAndTiny:
                return generator.nextUniformDouble() * (generator.nextInt(below: 2) == 0 ? 1e30 : 1e-30)
            case .negative: return -generator.nextUniformDouble() - 1
            case .nearDoubleMax: return (generator.nextUniformDouble() - 0.5) * 1e300
            }
        }
    }
}

/// A relative tolerance for comparing two optimal totals computed by different summation orders
/// and different dual updates: 1e-12 of the total magnitude (each of ≤ 8 entries is summed once;
/// Double carries 53 bits, about 1.1e-16 each, with room for the rounding of potentials).
private func tolerance(_ costs: [Double], rows m: Int, columns n: Int) -> Double {
    var scale = 0.0
    for i in 0..<m {
        var rowMaximum = 0.0
        for j in 0..<n { rowMaximum = max(rowMaximum, abs(costs[i * n + j])) }
        scale += rowMaximum
    }
    return 1e-12 * scale
}

private func lcgMatrix(seed: UInt64, n: Int, range: UInt64) -> [Double] {
    var state = seed
    return (0..<(n * n)).map { _ in
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Double((state >> 33) % range)
    }
}

// MARK: - Tests

@Suite("LinearAssignment")
struct LinearAssignmentTests {
    @Test("optimum equals brute force over all permutations (square, n ≤ 8, every matrix kind, both objectives)")
    func squareBruteForce() throws {
        var checked = 0
        for seed in UInt64(0)..<2_000 {
            var generator = SeededGenerator(seed: seed)
            // Mostly small sizes; one in twenty is n = 8 so the sweep stays fast.
            let n = seed % 20 == 0 ? 8 : 1 + generator.nextInt(below: 7)
            let kind = MatrixKind.allCases[Int(seed) % MatrixKind.allCases.count]
            let costs = kind.draw(n * n, &generator)
            for objective in [AssignmentObjective.minimise, .maximise] {
                let solution = try LinearAssignment.solve(costs: costs, rows: n, columns: n, objective: objective)
                #expect(isValidAssignment(solution.permutation, rows: n, columns: n), "seed \(seed) \(kind) n \(n)")
                let total = rowOrderTotal(costs, columns: n, solution.permutation)
                #expect(solution.cost == total, "reported cost, seed \(seed) \(kind) n \(n) \(objective)")
                let best = bruteForceOptimum(costs, rows: n, columns: n, maximise: objective == .maximise)
                if kind.isIntegral {
                    #expect(total == best, "seed \(seed) \(kind) n \(n) \(objective): \(total) vs \(best)")
                } else {
                    #expect(abs(total - best) <= tolerance(costs, rows: n, columns: n),
                            "seed \(seed) \(kind) n \(n) \(objective): \(total) vs \(best)")
                }
                checked += 1
            }
        }
        #expect(checked == 4_000)
    }

    @Test("rectangular problems (rows < columns and rows > columns) match brute force")
    func rectangularBruteForce() throws {
        for seed in UInt64(0)..<600 {
            var generator = SeededGenerator(seed: 10_000 + seed)
            let m = 1 + generator.nextInt(below: 6)
            var n = 1 + generator.nextInt(below: 6)
            if n == m { n += 1 }
            let kind = MatrixKind.allCases[Int(seed) % MatrixKind.allCases.count]
            let costs = kind.draw(m * n, &generator)
            for objective in [AssignmentObjective.minimise, .maximise] {
                let solution = try LinearAssignment.solve(costs: costs, rows: m, columns: n, objective: objective)
                #expect(isValidAssignment(solution.permutation, rows: m, columns: n), "seed \(seed) \(m)×\(n)")
                let total = rowOrderTotal(costs, columns: n, solution.permutation)
                let best = bruteForceOptimum(costs, rows: m, columns: n, maximise: objective == .maximise)
                let slack = kind.isIntegral ? 0 : tolerance(costs, rows: m, columns: n)
                #expect(abs(total - best) <= slack, "seed \(seed) \(kind) \(m)×\(n) \(objective): \(total) vs \(best)")
                #expect(abs(solution.cost - total) <= slack, "reported cost, seed \(seed)")
            }
        }
    }

    @Test("the Float tensor entry point solves the Float-rounded matrix")
    func tensorBruteForce() throws {
        for seed in UInt64(0)..<300 {
            var generator = SeededGenerator(seed: 20_000 + seed)
            let n = 1 + generator.nextInt(below: 7)
            let tensor = generator.normal([n, n])
            let costs = tensor.storage.map(Double.init)
            for objective in [AssignmentObjective.minimise, .maximise] {
                let solution = try LinearAssignment.solve(costs: tensor, objective: objective)
                let total = rowOrderTotal(costs, columns: n, solution.permutation)
                #expect(solution.cost == total, "seed \(seed)")
                let best = bruteForceOptimum(costs, rows: n, columns: n, maximise: objective == .maximise)
                #expect(abs(total - best) <= tolerance(costs, rows: n, columns: n), "seed \(seed) \(objective)")
            }
        }
    }

    @Test("medium random problems agree with the Hungarian method", arguments: [
        (seed: UInt64(1), n: 37, kind: 0), (seed: 2, n: 64, kind: 1), (seed: 3, n: 120, kind: 0),
        (seed: 4, n: 120, kind: 1), (seed: 5, n: 200, kind: 2), (seed: 6, n: 301, kind: 0),
    ])
    func agreesWithHungarian(seed: UInt64, n: Int, kind: Int) throws {
        var generator = SeededGenerator(seed: seed)
        let costs: [Double] = (0..<(n * n)).map { _ in
            switch kind {
            case 0: return generator.nextUniformDouble()
            case 1: return Double(generator.nextInt(below: 5))        // heavy ties
            default: return Double(generator.nextInt(below: 1_000_000)) - 500_000
            }
        }
        let solution = try LinearAssignment.solve(costs: costs, rows: n, columns: n)
        #expect(isValidAssignment(solution.permutation, rows: n, columns: n), "seed \(seed)")
        let reference = hungarianOptimum(costs, rows: n, columns: n)
        let total = rowOrderTotal(costs, columns: n, solution.permutation)
        // Uniform costs: totals of two optimal assignments differ only by summation rounding (≈ n·1e-16).
        let slack = kind == 0 ? 1e-9 : 0
        #expect(abs(total - reference.total) <= slack, "seed \(seed) n \(n): \(total) vs \(reference.total)")
    }

    @Test("n = 500 uniform: equals the Hungarian method (minimise and maximise)")
    func largeUniformAgainstHungarian() throws {
        let n = 500
        var generator = SeededGenerator(seed: 500)
        let costs = (0..<(n * n)).map { _ in generator.nextUniformDouble() }
        let minimum = try LinearAssignment.solve(costs: costs, rows: n, columns: n, objective: .minimise)
        let maximum = try LinearAssignment.solve(costs: costs, rows: n, columns: n, objective: .maximise)
        #expect(isValidAssignment(minimum.permutation, rows: n, columns: n))
        #expect(isValidAssignment(maximum.permutation, rows: n, columns: n))
        let referenceMinimum = hungarianOptimum(costs, rows: n, columns: n).total
        let referenceMaximum = -hungarianOptimum(costs.map { -$0 }, rows: n, columns: n).total
        // 500 terms of size ≤ 1 in Double: summation differences stay far below 1e-9.
        #expect(abs(minimum.cost - referenceMinimum) <= 1e-9, "\(minimum.cost) vs \(referenceMinimum)")
        #expect(abs(maximum.cost - referenceMaximum) <= 1e-9, "\(maximum.cost) vs \(referenceMaximum)")
    }

    struct ScipyCase: Decodable, Sendable {
        let seed: UInt64
        let n: Int
        let range: UInt64
        let minimum: Double
        let maximum: Double
        let first_entries: [Double]
    }

    struct ScipyFixture: Decodable, Sendable {
        let cases: [ScipyCase]
    }

    @Test("integer LCG matrices reach the optima scipy's linear_sum_assignment found")
    func scipyOptima() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Fixtures/assignment-scipy-optima.json")
        let fixture = try JSONDecoder().decode(ScipyFixture.self, from: Data(contentsOf: url))
        #expect(fixture.cases.count == 3)
        for entry in fixture.cases {
            let costs = lcgMatrix(seed: entry.seed, n: entry.n, range: entry.range)
            #expect(Array(costs.prefix(3)) == entry.first_entries, "generator drift, seed \(entry.seed)")
            let minimum = try LinearAssignment.solve(costs: costs, rows: entry.n, columns: entry.n, objective: .minimise)
            let maximum = try LinearAssignment.solve(costs: costs, rows: entry.n, columns: entry.n, objective: .maximise)
            #expect(isValidAssignment(minimum.permutation, rows: entry.n, columns: entry.n))
            #expect(minimum.cost == entry.minimum, "seed \(entry.seed)")
            #expect(maximum.cost == entry.maximum, "seed \(entry.seed)")
            #expect(rowOrderTotal(costs, columns: entry.n, maximum.permutation) == entry.maximum)
        }
    }

    @Test("non-finite costs throw the position of the first offending entry", arguments: [
        (value: Double.nan, row: 1, column: 2), (value: .infinity, row: 0, column: 0),
        (value: -.infinity, row: 2, column: 1), (value: .signalingNaN, row: 2, column: 2),
    ])
    func nonFiniteCosts(value: Double, row: Int, column: Int) {
        var costs = (0..<9).map(Double.init)
        costs[row * 3 + column] = value
        #expect(throws: AssignmentError.nonFiniteCost(row: row, column: column)) {
            try LinearAssignment.solve(costs: costs, rows: 3, columns: 3)
        }
        var tensor = Tensor(shape: [3, 3], storage: (0..<9).map(Float.init))
        tensor[row, column] = Float(value)
        #expect(throws: AssignmentError.nonFiniteCost(row: row, column: column)) {
            try LinearAssignment.solve(costs: tensor, objective: .maximise)
        }
        // Rows > columns are solved transposed; the error still names the caller's row and column.
        var tall = (0..<12).map(Double.init)
        tall[row * 3 + column] = value
        #expect(throws: AssignmentError.nonFiniteCost(row: row, column: column)) {
            try LinearAssignment.solve(costs: tall, rows: 4, columns: 3)
        }
    }

    @Test("malformed shapes throw typed errors")
    func malformedInput() {
        #expect(throws: AssignmentError.elementCountMismatch(expected: 6, found: 5)) {
            try LinearAssignment.solve(costs: [1, 2, 3, 4, 5], rows: 2, columns: 3)
        }
        #expect(throws: AssignmentError.negativeDimension(rows: -1, columns: 3)) {
            try LinearAssignment.solve(costs: [], rows: -1, columns: 3)
        }
        #expect(throws: AssignmentError.invalidShape(found: [2, 3, 4], expected: "[rows, columns]")) {
            try LinearAssignment.solve(costs: Tensor(shape: [2, 3, 4]))
        }
        #expect(throws: AssignmentError.invalidShape(found: [2, 3, 4], expected: "[B, n, n] or [n, n]")) {
            try LinearAssignment.matchings(scores: Tensor(shape: [2, 3, 4]))
        }
        #expect(throws: AssignmentError.invalidShape(found: [6], expected: "[B, n, n] or [n, n]")) {
            try LinearAssignment.solveBatch(costs: Tensor(shape: [6]), objective: .minimise)
        }
        var slots = [Int](repeating: 0, count: 2)
        let costs: [Double] = [1, 2, 3, 4, 5, 6, 7, 8, 9]
        #expect(throws: AssignmentError.destinationCountMismatch(expected: 3, found: 2)) {
            try costs.withUnsafeBufferPointer { buffer in
                try slots.withUnsafeMutableBufferPointer { destination in
                    try LinearAssignment.solve(costs: buffer, rows: 3, columns: 3, objective: .minimise, into: destination)
                }
            }
        }
    }

    @Test("empty and one-element matrices")
    func degenerateSizes() throws {
        #expect(try LinearAssignment.solve(costs: [], rows: 0, columns: 0) == LinearAssignment(permutation: [], cost: 0))
        #expect(try LinearAssignment.solve(costs: [], rows: 0, columns: 4) == LinearAssignment(permutation: [], cost: 0))
        #expect(try LinearAssignment.solve(costs: [], rows: 3, columns: 0)
                == LinearAssignment(permutation: [-1, -1, -1], cost: 0))
        #expect(try LinearAssignment.solve(costs: Tensor(shape: [0, 0])).permutation == [])
        #expect(try LinearAssignment.solve(costs: [-7.5], rows: 1, columns: 1) == LinearAssignment(permutation: [0], cost: -7.5))
        #expect(try LinearAssignment.matchings(scores: Tensor(shape: [2, 0, 0])) == [[], []])
        #expect(try LinearAssignment.matchings(scores: Tensor(shape: [0, 3, 3])) == [])
    }

    @Test("hand-made cases: anti-diagonal optimum, maximise versus minimise, rows > columns")
    func handCases() throws {
        // Minimum 1 + 2 + 3 on the anti-diagonal; maximum 9 + 9 + 9 at (0, 1), (1, 0), (2, 2).
        let costs: [Double] = [9, 9, 1,
                               9, 2, 8,
                               3, 9, 9]
        #expect(try LinearAssignment.solve(costs: costs, rows: 3, columns: 3)
                == LinearAssignment(permutation: [2, 1, 0], cost: 6))
        let maximum = try LinearAssignment.solve(costs: costs, rows: 3, columns: 3, objective: .maximise)
        #expect(maximum == LinearAssignment(permutation: [1, 0, 2], cost: 27))
        // Three candidates for two columns: rows 0 and 2 take them, row 1 is left over.
        let tall: [Double] = [1, 5,
                              4, 4,
                              5, 0]
        #expect(try LinearAssignment.solve(costs: tall, rows: 3, columns: 2)
                == LinearAssignment(permutation: [0, -1, 1], cost: 1))
    }

    @Test("batched matchings recover planted permutations and agree with per-item solves")
    func batchedMatchings() throws {
        let batch = 6, n = 9
        var generator = SeededGenerator(seed: 99)
        var scores = generator.uniform([batch, n, n])
        var planted: [[Int]] = []
        for b in 0..<batch {
            let permutation = generator.permutation(n)
            planted.append(permutation)
            // A planted score of 2 beats any alternative made of entries below 1.
            for i in 0..<n { scores[b, i, permutation[i]] = 2 }
        }
        #expect(try LinearAssignment.matchings(scores: scores) == planted)
        let solved = try LinearAssignment.solveBatch(costs: scores, objective: .maximise)
        #expect(solved.map(\.permutation) == planted)
        for b in 0..<batch { #expect(solved[b].cost == Double(2 * n)) }
        // A single [n, n] matrix is a batch of one.
        let single = Tensor(shape: [n, n], storage: Array(scores.storage[0..<(n * n)]))
        #expect(try LinearAssignment.matchings(scores: single) == [planted[0]])
    }

    @Test("the in-place entry point matches the allocating one")
    func inPlace() throws {
        var generator = SeededGenerator(seed: 7)
        for n in [0, 1, 2, 9, 36] {
            let costs = (0..<(n * n)).map { _ in Float(generator.nextUniform()) }
            var slots = [Int](repeating: 0, count: n)
            let total = try costs.withUnsafeBufferPointer { buffer in
                try slots.withUnsafeMutableBufferPointer { destination in
                    try LinearAssignment.solve(costs: buffer, rows: n, columns: n, objective: .maximise, into: destination)
                }
            }
            let reference = try LinearAssignment.solve(costs: Tensor(shape: [n, n], storage: costs), objective: .maximise)
            #expect(slots == reference.permutation && total == reference.cost, "n \(n)")
        }
    }
}
