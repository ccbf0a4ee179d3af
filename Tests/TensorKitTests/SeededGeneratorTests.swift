import Testing
import TensorKit

@Suite struct SeededGeneratorTests {
    @Test func sameSeedSameStream() {
        var a = SeededGenerator(seed: 42), b = SeededGenerator(seed: 42), c = SeededGenerator(seed: 43)
        let xa = (0..<100).map { _ in a.next() }, xb = (0..<100).map { _ in b.next() }
        let xc = (0..<100).map { _ in c.next() }
        #expect(xa == xb)
        #expect(xa != xc)
    }

    @Test func permutationsAreUniformOnThreeElements() {
        // 6 permutations, 60,000 draws: each count should be near 10,000 (5 sigma ≈ 456).
        var rng = SeededGenerator(seed: 7)
        var counts: [[Int]: Int] = [:]
        for _ in 0..<60_000 { counts[rng.permutation(3), default: 0] += 1 }
        #expect(counts.count == 6)
        for (_, n) in counts { #expect(abs(n - 10_000) < 460) }
    }

    @Test func uniformAndGumbelMoments() {
        // Gumbel mean is the Euler–Mascheroni constant 0.5772, variance π²/6 ≈ 1.645.
        var rng = SeededGenerator(seed: 1)
        let n = 200_000
        let g = rng.gumbel([n]).storage.map(Double.init)
        let mean = g.reduce(0, +) / Double(n)
        let variance = g.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(n)
        #expect(abs(mean - 0.5772) < 0.01)
        #expect(abs(variance - 1.6449) < 0.03)
        let u = rng.uniform([n]).storage
        #expect(u.allSatisfy { $0 >= 0 && $0 < 1 })
    }
}

@Suite struct SeededGeneratorStateTests {
    @Test func restoredStateContinuesTheStream() {
        var a = SeededGenerator(seed: 99)
        for _ in 0..<17 { _ = a.next() }
        guard var b = SeededGenerator(state: a.state) else { Issue.record("state did not restore"); return }
        #expect((0..<50).map { _ in a.next() } == (0..<50).map { _ in b.next() })
        #expect(SeededGenerator(state: [1, 0, 0, 0, 0]) == nil)
        #expect(SeededGenerator(state: [1, 2]) == nil)
    }
}
