import TensorKit

/// A fully connected layer (PyTorch's `nn.Linear`): `y = x·Wᵀ + b`.
///
/// Shapes: input `[…, in]` (all leading dimensions are rows), weight `[out, in]`, bias `[out]`,
/// output `[…, out]`. Backward: `∂L/∂W += dYᵀ·X`, `∂L/∂b += Σ_rows dY`, `∂L/∂X = dY·W`.
public final class Linear {
    public let inputFeatures: Int
    public let outputFeatures: Int
    /// `[outputFeatures, inputFeatures]`.
    public let weight: Parameter
    /// `[outputFeatures]`, or `nil` for a layer without bias.
    public let bias: Parameter?

    private var cachedInput: Tensor?

    /// A layer initialised like PyTorch's (uniform in `±1/√in`).
    ///
    /// - Parameter name: the prefix of the parameter names (`g_2` gives `g_2.weight`).
    public init(name: String, inputFeatures: Int, outputFeatures: Int, bias: Bool = true,
                generator: inout SeededGenerator) {
        precondition(inputFeatures > 0 && outputFeatures > 0, "empty Linear layer")
        self.inputFeatures = inputFeatures
        self.outputFeatures = outputFeatures
        weight = Parameter(name: name + ".weight", value: Initialisation.uniformFanIn(
            [outputFeatures, inputFeatures], fanIn: inputFeatures, generator: &generator))
        self.bias = bias
            ? Parameter(name: name + ".bias", value: Initialisation.uniformFanIn(
                [outputFeatures], fanIn: inputFeatures, generator: &generator))
            : nil
    }

    /// The parameters in PyTorch order (weight, then bias).
    public var parameters: [Parameter] { [weight] + (bias.map { [$0] } ?? []) }

    func checkParameterShapes() {
        weight.checkShape()
        bias?.checkShape()
    }

    // MARK: - Kernels on row-major buffers

    /// `output[rows, out] = input[rows, in] · Wᵀ (+ b)`.
    func forward(input: UnsafePointer<Float>, rows: Int, output: UnsafeMutablePointer<Float>) {
        withOptionalPointer(bias?.value) { b in
            if let b {
                for r in 0..<rows { (output + r * outputFeatures).update(from: b, count: outputFeatures) }
            }
            weight.value.withUnsafeBufferPointer { w in
                BLAS.gemm(.none, .transpose, m: rows, n: outputFeatures, k: inputFeatures,
                          a: input, lda: inputFeatures, b: w.baseAddress!, ldb: inputFeatures,
                          beta: b == nil ? 0 : 1, c: output, ldc: outputFeatures)
            }
        }
    }

    /// `∂L/∂W += dYᵀ·X`, `∂L/∂b += Σ_rows dY`.
    func accumulateGradients(input: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>, rows: Int) {
        weight.gradient.withUnsafeMutableBufferPointer { g in
            withOptionalGradient(bias) { b in
                accumulateGradients(input: input, outputGradient: outputGradient, rows: rows,
                                    weightGradient: g.baseAddress!, biasGradient: b)
            }
        }
    }

    /// `weightGradient[out, in] += dYᵀ·X`, `biasGradient[out] += Σ_rows dY` into caller-owned sums
    /// (per-worker partials).
    func accumulateGradients(input: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>, rows: Int,
                             weightGradient: UnsafeMutablePointer<Float>, biasGradient: UnsafeMutablePointer<Float>?) {
        BLAS.gemm(.transpose, .none, m: outputFeatures, n: inputFeatures, k: rows,
                  a: outputGradient, lda: outputFeatures, b: input, ldb: inputFeatures,
                  beta: 1, c: weightGradient, ldc: inputFeatures)
        if let biasGradient {
            for r in 0..<rows {
                let row = outputGradient + r * outputFeatures
                for o in 0..<outputFeatures { biasGradient[o] += row[o] }
            }
        }
    }

    /// Rows per BLAS call that keep `rows·in·out` under OpenBLAS's threading threshold
    /// (`65536 · 4` multiply-adds), so calls made from parallel workers never wake its thread pool.
    var rowsPerSingleThreadedCall: Int {
        max(1, (1 << 18) / max(1, inputFeatures * outputFeatures))
    }

    /// `inputGradient[rows, in] = dY[rows, out] · W`, or `+=` when `accumulating`.
    func inputGradient(outputGradient: UnsafePointer<Float>, rows: Int, inputGradient: UnsafeMutablePointer<Float>,
                       accumulating: Bool = false) {
        weight.value.withUnsafeBufferPointer { w in
            BLAS.gemm(.none, .none, m: rows, n: inputFeatures, k: outputFeatures,
                      a: outputGradient, lda: outputFeatures, b: w.baseAddress!, ldb: inputFeatures,
                      beta: accumulating ? 1 : 0, c: inputGradient, ldc: inputFeatures)
        }
    }

    // MARK: - Tensor interface

    /// `x·Wᵀ + b` for `x` of shape `[…, in]`; keeps the input for ``backward(_:)``.
    public func forward(_ input: Tensor) -> Tensor {
        precondition(input.rank >= 1 && input.shape.last == inputFeatures,
                     "Linear expects [..., \(inputFeatures)], got \(input.shape)")
        let rows = input.count / inputFeatures
        checkParameterShapes()
        cachedInput = input
        var output = Tensor(shape: Array(input.shape.dropLast()) + [outputFeatures])
        input.withUnsafeBufferPointer { x in
            output.withUnsafeMutableBufferPointer { y in
                forward(input: x.baseAddress!, rows: rows, output: y.baseAddress!)
            }
        }
        return output
    }

    /// Accumulates the parameter gradients from `dY [..., out]` and returns `∂L/∂x`.
    @discardableResult
    public func backward(_ outputGradient: Tensor) -> Tensor {
        guard let input = cachedInput else { preconditionFailure("Linear.backward before forward") }
        accumulateParameterGradients(outputGradient)
        let rows = input.count / inputFeatures
        var inputGradient = Tensor(shape: input.shape)
        outputGradient.withUnsafeBufferPointer { dy in
            inputGradient.withUnsafeMutableBufferPointer { dx in
                self.inputGradient(outputGradient: dy.baseAddress!, rows: rows, inputGradient: dx.baseAddress!)
            }
        }
        return inputGradient
    }

    /// Accumulates the parameter gradients only.
    public func accumulateParameterGradients(_ outputGradient: Tensor) {
        guard let input = cachedInput else { preconditionFailure("Linear.backward before forward") }
        let rows = input.count / inputFeatures
        precondition(outputGradient.count == rows * outputFeatures && outputGradient.shape.last == outputFeatures,
                     "Linear gradient \(outputGradient.shape) does not match input \(input.shape)")
        checkParameterShapes()
        input.withUnsafeBufferPointer { x in
            outputGradient.withUnsafeBufferPointer { dy in
                accumulateGradients(input: x.baseAddress!, outputGradient: dy.baseAddress!, rows: rows)
            }
        }
    }
}
