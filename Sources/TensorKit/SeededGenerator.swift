/// A seeded pseudo-random generator (xoshiro256**, seeded through SplitMix64).
///
/// Every random draw in the project flows from one of these, so the same seed gives the same
/// numbers on every machine and Swift version (the standard library's own `random(in:using:)`
/// algorithms are not promised to stay the same, so the helpers below use their own).
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    @usableFromInline var s0: UInt64
    @usableFromInline var s1: UInt64
    @usableFromInline var s2: UInt64
    @usableFromInline var s3: UInt64

    /// The seed this generator was created with.
    public let seed: UInt64

    public init(seed: UInt64) {
        self.seed = seed
        var x = seed
        func splitMix(_ x: inout UInt64) -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitMix(&x); s1 = splitMix(&x); s2 = splitMix(&x); s3 = splitMix(&x)
    }

    @inlinable
    public mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = (s3 << 45) | (s3 >> 19)
        return result
    }

    /// The full internal state, so a run can be checkpointed and resumed exactly.
    public var state: [UInt64] { [seed, s0, s1, s2, s3] }

    /// A generator restored from `state`; `nil` if the array is not a saved state.
    public init?(state: [UInt64]) {
        guard state.count == 5, state[1...].contains(where: { $0 != 0 }) else { return nil }
        seed = state[0]; s0 = state[1]; s1 = state[2]; s2 = state[3]; s3 = state[4]
    }

    /// An independent generator for a sub-stream (for example one per worker or per epoch).
    public func derived(_ stream: UInt64) -> SeededGenerator {
        SeededGenerator(seed: seed ^ (stream &* 0xD1B5_4A32_D192_ED03) &+ 0x632B_E59B_D9B4_E019)
    }

    /// A float uniform in `[0, 1)` with 24 random bits.
    @inlinable
    public mutating func nextUniform() -> Float {
        Float(next() >> 40) * 0x1p-24
    }

    /// A double uniform in `[0, 1)` with 53 random bits.
    @inlinable
    public mutating func nextUniformDouble() -> Double {
        Double(next() >> 11) * 0x1p-53
    }

    /// An integer uniform in `0..<bound` (Lemire's nearly-divisionless method, unbiased).
    @inlinable
    public mutating func nextInt(below bound: Int) -> Int {
        precondition(bound > 0, "bound must be positive")
        let b = UInt64(bound)
        var m = next().multipliedFullWidth(by: b)
        if m.low < b {
            let threshold = (0 &- b) % b
            while m.low < threshold { m = next().multipliedFullWidth(by: b) }
        }
        return Int(m.high)
    }

    /// A standard normal sample (Box–Muller in double precision).
    @inlinable
    public mutating func nextNormal() -> Float {
        let u1 = 1 - nextUniformDouble()
        let u2 = nextUniformDouble()
        return Float((-2 * _log(u1)).squareRoot() * _cos(2 * Double.pi * u2))
    }

    /// A standard Gumbel sample `−log(−log(u + ε) + ε)`, `ε = 1e-20` (Mena et al. 2018, reference code).
    @inlinable
    public mutating func nextGumbel() -> Float {
        let eps: Float = 1e-20
        let u = nextUniform()
        return -_logf(-_logf(u + eps) + eps)
    }

    /// A uniformly random permutation of `0..<n` (Fisher–Yates).
    public mutating func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        if n < 2 { return p }
        for i in stride(from: n - 1, to: 0, by: -1) {
            p.swapAt(i, nextInt(below: i + 1))
        }
        return p
    }

    /// Shuffles a collection in place with this generator (Fisher–Yates).
    public mutating func shuffle<C: MutableCollection & RandomAccessCollection>(_ c: inout C) {
        let n = c.count
        if n < 2 { return }
        for i in stride(from: n - 1, to: 0, by: -1) {
            let j = nextInt(below: i + 1)
            c.swapAt(c.index(c.startIndex, offsetBy: i), c.index(c.startIndex, offsetBy: j))
        }
    }

    /// A tensor of uniform samples in `[low, high)`.
    public mutating func uniform(_ shape: [Int], low: Float = 0, high: Float = 1) -> Tensor {
        var t = Tensor(shape: shape)
        for i in 0..<t.count { t.storage[i] = low + (high - low) * nextUniform() }
        return t
    }

    /// A tensor of normal samples.
    public mutating func normal(_ shape: [Int], mean: Float = 0, std: Float = 1) -> Tensor {
        var t = Tensor(shape: shape)
        for i in 0..<t.count { t.storage[i] = mean + std * nextNormal() }
        return t
    }

    /// A tensor of standard Gumbel samples.
    public mutating func gumbel(_ shape: [Int]) -> Tensor {
        var t = Tensor(shape: shape)
        for i in 0..<t.count { t.storage[i] = nextGumbel() }
        return t
    }
}
