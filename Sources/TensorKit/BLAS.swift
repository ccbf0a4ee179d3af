import CBLAS

/// Thin wrappers over OpenBLAS: Swift `Int` at the surface, `Int32` at the C boundary.
public enum BLAS {
    /// Whether an operand enters a product as stored or transposed.
    public enum Transpose: Sendable {
        case none
        case transpose

        @usableFromInline var cblas: CBLAS_TRANSPOSE { self == .none ? CblasNoTrans : CblasTrans }
    }

    /// Sets the number of threads OpenBLAS uses for every later call.
    public static func setThreads(_ count: Int) {
        openblas_set_num_threads(Int32(max(1, count)))
    }

    /// `C ← alpha · op(A) · op(B) + beta · C` on row-major matrices, `op(A)` `[m, k]`, `op(B)` `[k, n]`.
    @inlinable
    public static func gemm(
        _ transA: Transpose, _ transB: Transpose,
        m: Int, n: Int, k: Int,
        alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if m == 0 || n == 0 { return }
        cblas_sgemm(CblasRowMajor, transA.cblas, transB.cblas,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// `y ← alpha · op(A) · x + beta · y` for a row-major `A` of `rows × columns`.
    @inlinable
    public static func gemv(
        _ trans: Transpose, rows: Int, columns: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        x: UnsafePointer<Float>, beta: Float = 0, y: UnsafeMutablePointer<Float>
    ) {
        if rows == 0 || columns == 0 { return }
        cblas_sgemv(CblasRowMajor, trans.cblas, Int32(rows), Int32(columns), alpha, a, Int32(lda),
                    x, 1, beta, y, 1)
    }

    /// The matrix product of two rank-2 tensors with optional transposes.
    public static func matmul(_ a: Tensor, _ b: Tensor,
                              transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
        precondition(a.rank == 2 && b.rank == 2, "matmul needs matrices, got \(a.shape) and \(b.shape)")
        let m = transposeA ? a.shape[1] : a.shape[0]
        let k = transposeA ? a.shape[0] : a.shape[1]
        let kb = transposeB ? b.shape[1] : b.shape[0]
        let n = transposeB ? b.shape[0] : b.shape[1]
        precondition(k == kb, "inner dimensions differ: \(a.shape) and \(b.shape)")
        var c = Tensor(shape: [m, n])
        if k == 0 || m == 0 || n == 0 { return c }
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    gemm(transposeA ? .transpose : .none, transposeB ? .transpose : .none,
                         m: m, n: n, k: k, a: pa.baseAddress!, lda: a.shape[1],
                         b: pb.baseAddress!, ldb: b.shape[1], c: pc.baseAddress!, ldc: n)
                }
            }
        }
        return c
    }
}
