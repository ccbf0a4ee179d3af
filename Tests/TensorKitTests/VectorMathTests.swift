import Foundation
import Testing
import TensorKit

@Suite struct VectorMathTests {
    @Test func expMatchesLibmAcrossRange() {
        // Relative error bound: the polynomial is accurate to about 1 ulp; allow 4 ulp of float.
        var x: Float = -87
        while x < 88 {
            let got = VectorMath.exp(x)
            let want = Float(Foundation.exp(Double(x)))
            #expect(abs(got - want) <= 4 * want.ulp, "exp(\(x)) = \(got), want \(want)")
            x += 0.37
        }
    }

    @Test func expEdgeCases() {
        #expect(VectorMath.exp(-Float.infinity) == 0)
        #expect(VectorMath.exp(-200) == 0)
        #expect(VectorMath.exp(Float.infinity) == .infinity)
        #expect(VectorMath.exp(200) == .infinity)
        #expect(VectorMath.exp(Float.nan).isNaN)
        #expect(VectorMath.exp(0) == 1)
    }

    @Test(arguments: [1, 7, 8, 9, 33])
    func logSumExpRowsAndColumnsMatchDouble(columns: Int) {
        var rng = SeededGenerator(seed: UInt64(columns))
        let rows = 5
        let x = rng.normal([rows, columns], std: 30)
        var rowOut = [Float](repeating: 0, count: rows)
        var colOut = [Float](repeating: 0, count: columns)
        var scratch = [Float](repeating: 0, count: columns)
        x.storage.withUnsafeBufferPointer { p in
            VectorMath.logSumExpRows(p.baseAddress!, rows: rows, columns: columns, into: &rowOut)
            VectorMath.logSumExpColumns(p.baseAddress!, rows: rows, columns: columns, into: &colOut, scratch: &scratch)
        }
        func lse(_ v: [Double]) -> Double { let m = v.max()!; return m + Foundation.log(v.map { Foundation.exp($0 - m) }.reduce(0, +)) }
        for r in 0..<rows {
            let want = lse((0..<columns).map { Double(x[r, $0]) })
            #expect(abs(Double(rowOut[r]) - want) < 1e-4 * max(1, abs(want)))
        }
        for c in 0..<columns {
            let want = lse((0..<rows).map { Double(x[$0, c]) })
            #expect(abs(Double(colOut[c]) - want) < 1e-4 * max(1, abs(want)))
        }
    }
}
