import Permutations
import TensorKit
import Testing

@Suite("Permutation")
struct PermutationTests {
    @Test("validation names the first offending position", arguments: [
        ([0, 3, 1], PermutationError.valueOutOfRange(position: 1, value: 3, count: 3)),
        ([0, -1, 1], PermutationError.valueOutOfRange(position: 1, value: -1, count: 3)),
        ([2, 0, 2], PermutationError.duplicateValue(value: 2, firstPosition: 0, secondPosition: 2)),
        ([1, 1], PermutationError.duplicateValue(value: 1, firstPosition: 0, secondPosition: 1)),
    ])
    func validation(list: [Int], error: PermutationError) {
        #expect(throws: error) { try Permutation.validate(list) }
        #expect(throws: error) { try Permutation.inverse(list) }
        #expect(throws: error) { try Permutation.matrix(list) }
        #expect(throws: error) { try Permutation.apply(list, to: Array(repeating: "x", count: list.count)) }
        #expect(!Permutation.isValid(list))
    }

    @Test("matrix and list forms follow P[i, j] = 1 ⇔ permutation[i] = j")
    func matrixRoundTrip() throws {
        let permutation = [2, 0, 3, 1]
        let matrix = try Permutation.matrix(permutation)
        #expect(matrix.shape == [4, 4])
        for i in 0..<4 { for j in 0..<4 { #expect(matrix[i, j] == (permutation[i] == j ? 1 : 0)) } }
        #expect(try Permutation.list(fromMatrix: matrix) == permutation)
        #expect(try Permutation.list(fromMatrix: Tensor(shape: [0, 0])) == [])
        for seed in UInt64(0)..<50 {
            var generator = SeededGenerator(seed: seed)
            let p = generator.permutation(1 + generator.nextInt(below: 12))
            #expect(try Permutation.list(fromMatrix: Permutation.matrix(p)) == p, "seed \(seed)")
        }
    }

    @Test("non-permutation matrices are rejected", arguments: [
        (Tensor(shape: [2, 3]), PermutationError.notSquareMatrix(shape: [2, 3])),
        (Tensor(shape: [2, 2], storage: [1, 0, 0, 0.5]), PermutationError.notPermutationMatrix(row: 1, column: 1, value: 0.5)),
        (Tensor(shape: [2, 2], storage: [1, 1, 0, 0]), PermutationError.notPermutationMatrix(row: 0, column: 1, value: 1)),
        (Tensor(shape: [2, 2], storage: [1, 0, 1, 0]), PermutationError.notPermutationMatrix(row: 1, column: 0, value: 1)),
        (Tensor(shape: [2, 2], storage: [0, 1, 0, 0]), PermutationError.notPermutationMatrix(row: 1, column: -1, value: 0)),
    ])
    func badMatrices(matrix: Tensor, error: PermutationError) {
        #expect(throws: error) { try Permutation.list(fromMatrix: matrix) }
    }

    @Test("apply moves item i to slot permutation[i], like out[j] = Σ_i P[i, j] · item[i]")
    func applyMatchesMatrixProduct() throws {
        #expect(try Permutation.apply([2, 0, 1], to: ["a", "b", "c"]) == ["b", "c", "a"])
        #expect(try Permutation.apply([Int](), to: [String]()) == [])
        #expect(throws: PermutationError.lengthMismatch(expected: 3, found: 2)) {
            try Permutation.apply([2, 0, 1], to: [1.0, 2.0])
        }
        for seed in UInt64(0)..<50 {
            var generator = SeededGenerator(seed: seed)
            let n = 1 + generator.nextInt(below: 10)
            let p = generator.permutation(n)
            let items = (0..<n).map { _ in Float(generator.nextInt(below: 100)) }
            let matrix = try Permutation.matrix(p)
            // The sum written out over the matrix: out[j] = Σ_i P[i, j] · items[i].
            let viaMatrix = (0..<n).map { j in (0..<n).reduce(Float(0)) { $0 + matrix[$1, j] * items[$1] } }
            #expect(try Permutation.apply(p, to: items) == viaMatrix, "seed \(seed)")
        }
    }

    @Test("apply to tensor slices moves whole pieces")
    func applyToSlices() throws {
        // Three 1×2 "pieces" whose values name their index.
        let pieces = Tensor(shape: [3, 1, 2], storage: [0, 0, 1, 1, 2, 2])
        let out = try Permutation.apply([1, 2, 0], toSlicesOf: pieces)
        #expect(out.shape == [3, 1, 2] && out.storage == [2, 2, 0, 0, 1, 1])
        #expect(throws: PermutationError.lengthMismatch(expected: 2, found: 3)) {
            try Permutation.apply([1, 0], toSlicesOf: pieces)
        }
    }

    @Test("inverse undoes apply, compose chains applications")
    func inverseAndCompose() throws {
        for seed in UInt64(0)..<100 {
            var generator = SeededGenerator(seed: seed)
            let n = generator.nextInt(below: 12)
            let first = generator.permutation(n), second = generator.permutation(n)
            let items = (0..<n).map { "item\($0)" }
            let inverse = try Permutation.inverse(first)
            #expect(try Permutation.apply(inverse, to: Permutation.apply(first, to: items)) == items, "seed \(seed)")
            #expect(try Permutation.compose(first, then: inverse) == Permutation.identity(n), "seed \(seed)")
            #expect(try Permutation.apply(Permutation.compose(first, then: second), to: items)
                    == Permutation.apply(second, to: Permutation.apply(first, to: items)), "seed \(seed)")
        }
        // Matrix form: P_{first then second} = P_first · P_second, checked on one hand case.
        // first = [1, 2, 0], second = [2, 0, 1]: composed[i] = second[first[i]] = [0, 1, 2].
        #expect(try Permutation.compose([1, 2, 0], then: [2, 0, 1]) == [0, 1, 2])
        #expect(throws: PermutationError.lengthMismatch(expected: 2, found: 3)) {
            try Permutation.compose([1, 0], then: [0, 1, 2])
        }
    }
}
