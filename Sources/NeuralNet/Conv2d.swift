import TensorKit

/// A 2-D convolution with stride 1 and zero padding (PyTorch's `nn.Conv2d`, cross-correlation).
///
/// Shapes: input `[N, C, H, W]`, weight `[O, C, k, k]`, bias `[O]`, output `[N, O, H', W']` with
/// `H' = H + 2·padding − k + 1` (same size for an odd `k` and `padding = k / 2`).
///
/// `y[n, o, i, j] = b[o] + Σ_{c, u, v} w[o, c, u, v] · x[n, c, i + u − padding, j + v − padding]`.
///
/// Each sample is lowered with im2col to a `[C·k·k, H'·W']` matrix that stays in cache and is
/// multiplied by the `[O, C·k·k]` weight with one BLAS sgemm, so the output comes out in NCHW
/// directly. Samples are split over ``threadCount`` workers; each sgemm is small enough that
/// OpenBLAS runs it on the calling thread.
public final class Conv2d {
    public let inputChannels: Int
    public let outputChannels: Int
    public let kernelSize: Int
    public let padding: Int
    /// `[outputChannels, inputChannels, kernelSize, kernelSize]`.
    public let weight: Parameter
    /// `[outputChannels]`, or `nil` for a convolution without bias.
    public let bias: Parameter?
    /// Workers used by ``forward(_:)`` and ``backward(_:)``.
    public var threadCount: Int = defaultThreadCount()

    private var cachedInput: Tensor?
    private var workspace = FloatBuffer(count: 0)

    /// A convolution initialised like PyTorch's (uniform in `±1/√(C·k·k)`).
    ///
    /// - Parameters:
    ///   - name: the prefix of the parameter names (`g_1.0` gives `g_1.0.weight`, `g_1.0.bias`).
    ///   - padding: zero padding on every side; `nil` means `kernelSize / 2`.
    public init(name: String, inputChannels: Int, outputChannels: Int, kernelSize: Int,
                padding: Int? = nil, bias: Bool = true, generator: inout SeededGenerator) {
        precondition(inputChannels > 0 && outputChannels > 0 && kernelSize > 0, "empty convolution")
        self.inputChannels = inputChannels
        self.outputChannels = outputChannels
        self.kernelSize = kernelSize
        self.padding = padding ?? kernelSize / 2
        precondition(self.padding >= 0, "negative padding")
        let fanIn = inputChannels * kernelSize * kernelSize
        weight = Parameter(name: name + ".weight", value: Initialisation.uniformFanIn(
            [outputChannels, inputChannels, kernelSize, kernelSize], fanIn: fanIn, generator: &generator))
        self.bias = bias
            ? Parameter(name: name + ".bias", value: Initialisation.uniformFanIn(
                [outputChannels], fanIn: fanIn, generator: &generator))
            : nil
    }

    /// The parameters in PyTorch order (weight, then bias).
    public var parameters: [Parameter] { [weight] + (bias.map { [$0] } ?? []) }

    func checkParameterShapes() {
        weight.checkShape()
        bias?.checkShape()
    }

    /// The rows of the im2col matrix: `C·k·k`.
    var taps: Int { inputChannels * kernelSize * kernelSize }

    /// The output height and width for an input of `height × width`.
    public func outputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        (height + 2 * padding - kernelSize + 1, width + 2 * padding - kernelSize + 1)
    }

    // MARK: - Per-sample kernels

    /// Writes the `[C·k·k, H'·W']` im2col matrix of one `[C, H, W]` sample; row `(c, u, v)`
    /// holds the input shifted by `(u − padding, v − padding)`, zero outside.
    ///
    /// Each channel is first copied into a zero-bordered plane (on the stack for small pieces), so
    /// every row of the matrix is one branch-free contiguous copy.
    func im2col(sample: UnsafePointer<Float>, height: Int, width: Int,
                columns: UnsafeMutablePointer<Float>) {
        let k = kernelSize, p = padding
        let (outHeight, outWidth) = outputSize(height: height, width: width)
        let pixels = outHeight * outWidth
        let paddedHeight = height + 2 * p, paddedWidth = width + 2 * p
        withUnsafeTemporaryAllocation(of: Float.self, capacity: paddedHeight * paddedWidth) { buffer in
            let padded = buffer.baseAddress!
            if p > 0 { padded.update(repeating: 0, count: paddedHeight * paddedWidth) }
            var row = columns
            for c in 0..<inputChannels {
                let plane = sample + c * height * width
                for y in 0..<height {
                    copyRow(from: plane + y * width, to: padded + (y + p) * paddedWidth + p, count: width)
                }
                for u in 0..<k {
                    for v in 0..<k {
                        for y in 0..<outHeight {
                            copyRow(from: padded + (y + u) * paddedWidth + v, to: row + y * outWidth, count: outWidth)
                        }
                        row += pixels
                    }
                }
            }
        }
    }

    /// Adds a `[C·k·k, H'·W']` column gradient back onto a `[C, H, W]` sample gradient (the
    /// adjoint of ``im2col(sample:height:width:columns:)``), through a zero-bordered plane.
    func col2imAdd(columns: UnsafePointer<Float>, height: Int, width: Int,
                   sampleGradient: UnsafeMutablePointer<Float>) {
        let k = kernelSize, p = padding
        let (outHeight, outWidth) = outputSize(height: height, width: width)
        let pixels = outHeight * outWidth
        let paddedHeight = height + 2 * p, paddedWidth = width + 2 * p
        withUnsafeTemporaryAllocation(of: Float.self, capacity: paddedHeight * paddedWidth) { buffer in
            let padded = buffer.baseAddress!
            var row = columns
            for c in 0..<inputChannels {
                padded.update(repeating: 0, count: paddedHeight * paddedWidth)
                for u in 0..<k {
                    for v in 0..<k {
                        for y in 0..<outHeight {
                            addRow(from: row + y * outWidth, to: padded + (y + u) * paddedWidth + v, count: outWidth)
                        }
                        row += pixels
                    }
                }
                let plane = sampleGradient + c * height * width
                for y in 0..<height {
                    addRow(from: padded + (y + p) * paddedWidth + p, to: plane + y * width, count: width)
                }
            }
        }
    }

    /// `out[O, P] = W[O, C·k·k] · columns[C·k·k, P] (+ b)` for one sample of `P` output pixels.
    func forwardSample(columns: UnsafePointer<Float>, pixels: Int, weight: UnsafePointer<Float>,
                       bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>) {
        if let bias {
            for o in 0..<outputChannels {
                (output + o * pixels).update(repeating: bias[o], count: pixels)
            }
        }
        BLAS.gemm(.none, .none, m: outputChannels, n: pixels, k: taps,
                  a: weight, lda: taps, b: columns, ldb: pixels,
                  beta: bias == nil ? 0 : 1, c: output, ldc: pixels)
    }

    /// `dW += dY[O, P] · columnsᵀ`, `db += Σ_P dY` for one sample.
    func accumulateSample(outputGradient: UnsafePointer<Float>, columns: UnsafePointer<Float>,
                          pixels: Int, weightGradient: UnsafeMutablePointer<Float>,
                          biasGradient: UnsafeMutablePointer<Float>?) {
        BLAS.gemm(.none, .transpose, m: outputChannels, n: taps, k: pixels,
                  a: outputGradient, lda: pixels, b: columns, ldb: pixels,
                  beta: 1, c: weightGradient, ldc: taps)
        if let biasGradient {
            for o in 0..<outputChannels {
                biasGradient[o] += sum(outputGradient + o * pixels, count: pixels)
            }
        }
    }

    /// `dColumns[C·k·k, P] = Wᵀ · dY[O, P]` for one sample.
    func columnsGradientSample(outputGradient: UnsafePointer<Float>, pixels: Int,
                               weight: UnsafePointer<Float>, columnsGradient: UnsafeMutablePointer<Float>) {
        BLAS.gemm(.transpose, .none, m: taps, n: pixels, k: outputChannels,
                  a: weight, lda: taps, b: outputGradient, ldb: pixels,
                  beta: 0, c: columnsGradient, ldc: pixels)
    }

    // MARK: - Batch interface

    /// The convolution of a batch `[N, C, H, W]` → `[N, O, H', W']`; keeps the input for
    /// ``backward(_:)``.
    public func forward(_ input: Tensor) -> Tensor {
        precondition(input.rank == 4 && input.shape[1] == inputChannels,
                     "Conv2d expects [N, \(inputChannels), H, W], got \(input.shape)")
        let (count, height, width) = (input.shape[0], input.shape[2], input.shape[3])
        let (outHeight, outWidth) = outputSize(height: height, width: width)
        precondition(outHeight > 0 && outWidth > 0, "input \(input.shape) smaller than the kernel")
        checkParameterShapes()
        let pixels = outHeight * outWidth
        cachedInput = input
        var output = Tensor(shape: [count, outputChannels, outHeight, outWidth])
        let workers = max(1, min(threadCount, count))
        let columnsSize = taps * pixels
        let scratch = reserve(workers * columnsSize)
        let inputSize = inputChannels * height * width, outputSize = outputChannels * pixels
        weight.value.withUnsafeBufferPointer { w in
            withOptionalPointer(bias?.value) { b in
                input.withUnsafeBufferPointer { x in
                    output.withUnsafeMutableBufferPointer { y in
                        let (x, y, w) = (x.baseAddress!, y.baseAddress!, w.baseAddress!)
                        Parallel.forEachRange(count: count, workers: workers) { worker, range in
                            let columns = scratch + worker * columnsSize
                            for n in range {
                                im2col(sample: x + n * inputSize, height: height, width: width, columns: columns)
                                forwardSample(columns: columns, pixels: pixels, weight: w, bias: b,
                                              output: y + n * outputSize)
                            }
                        }
                    }
                }
            }
        }
        return output
    }

    /// Accumulates `∂L/∂weight` and `∂L/∂bias` from `dY [N, O, H', W']` and returns `∂L/∂input`.
    @discardableResult
    public func backward(_ outputGradient: Tensor) -> Tensor {
        guard let input = cachedInput else { preconditionFailure("Conv2d.backward before forward") }
        var inputGradient = Tensor(shape: input.shape)
        inputGradient.withUnsafeMutableBufferPointer { dx in
            backward(outputGradient, input: input, inputGradient: dx.baseAddress!)
        }
        return inputGradient
    }

    /// Accumulates the parameter gradients only (for a first layer, whose input needs none).
    public func accumulateParameterGradients(_ outputGradient: Tensor) {
        guard let input = cachedInput else { preconditionFailure("Conv2d.backward before forward") }
        backward(outputGradient, input: input, inputGradient: nil)
    }

    private func backward(_ outputGradient: Tensor, input: Tensor, inputGradient: UnsafeMutablePointer<Float>?) {
        checkParameterShapes()
        let (count, height, width) = (input.shape[0], input.shape[2], input.shape[3])
        let (outHeight, outWidth) = outputSize(height: height, width: width)
        precondition(outputGradient.shape == [count, outputChannels, outHeight, outWidth],
                     "Conv2d gradient \(outputGradient.shape) does not match its output")
        let pixels = outHeight * outWidth
        let workers = max(1, min(threadCount, count))
        let columnsSize = taps * pixels
        let weightSize = outputChannels * taps
        // Per worker: im2col columns, column gradient, weight gradient, bias gradient.
        let stride = 2 * columnsSize + weightSize + outputChannels
        let scratch = reserve(workers * stride)
        let inputSize = inputChannels * height * width, outputSize = outputChannels * pixels
        weight.value.withUnsafeBufferPointer { w in
            input.withUnsafeBufferPointer { x in
                outputGradient.withUnsafeBufferPointer { dy in
                    let (x, dy, w) = (x.baseAddress!, dy.baseAddress!, w.baseAddress!)
                    Parallel.forEachRange(count: count, workers: workers) { worker, range in
                        let columns = scratch + worker * stride
                        let columnsGradient = columns + columnsSize
                        let weightGradient = columnsGradient + columnsSize
                        let biasGradient = weightGradient + weightSize
                        weightGradient.update(repeating: 0, count: weightSize + outputChannels)
                        for n in range {
                            im2col(sample: x + n * inputSize, height: height, width: width, columns: columns)
                            accumulateSample(outputGradient: dy + n * outputSize, columns: columns, pixels: pixels,
                                             weightGradient: weightGradient,
                                             biasGradient: bias == nil ? nil : biasGradient)
                            if let inputGradient {
                                columnsGradientSample(outputGradient: dy + n * outputSize, pixels: pixels,
                                                      weight: w, columnsGradient: columnsGradient)
                                col2imAdd(columns: columnsGradient, height: height, width: width,
                                          sampleGradient: inputGradient + n * inputSize)
                            }
                        }
                    }
                }
            }
        }
        // Reduce the per-worker partial sums in worker order (deterministic for a thread count).
        weight.gradient.withUnsafeMutableBufferPointer { g in
            for worker in 0..<workers {
                let partial = scratch + worker * stride + 2 * columnsSize
                for i in 0..<weightSize { g[i] += partial[i] }
            }
        }
        withOptionalGradient(bias) { g in
            guard let g else { return }
            for worker in 0..<workers {
                let partial = scratch + worker * stride + 2 * columnsSize + weightSize
                for o in 0..<outputChannels { g[o] += partial[o] }
            }
        }
    }

    /// A workspace of at least `count` floats, kept across calls.
    private func reserve(_ count: Int) -> UnsafeMutablePointer<Float> {
        if workspace.count < count { workspace = FloatBuffer(count: count) }
        return workspace.pointer
    }
}

/// `Σ x[i]` with SIMD partial sums.
@inline(__always)
func sum(_ x: UnsafePointer<Float>, count: Int) -> Float {
    var acc = SIMD4<Float>(repeating: 0)
    var i = 0
    while i + 4 <= count {
        acc += UnsafeRawPointer(x + i).loadUnaligned(as: SIMD4<Float>.self)
        i += 4
    }
    var total = acc.sum()
    while i < count { total += x[i]; i += 1 }
    return total
}

/// Copies `count` floats; rows of 8 or more use 8-wide moves, the last one overlapping.
@inline(__always)
func copyRow(from source: UnsafePointer<Float>, to destination: UnsafeMutablePointer<Float>, count: Int) {
    if count < 8 {
        for x in 0..<count { destination[x] = source[x] }
        return
    }
    var x = 0
    while x + 8 <= count {
        UnsafeMutableRawPointer(destination + x).storeBytes(
            of: UnsafeRawPointer(source + x).loadUnaligned(as: SIMD8<Float>.self), as: SIMD8<Float>.self)
        x += 8
    }
    if x < count {
        let last = count - 8
        UnsafeMutableRawPointer(destination + last).storeBytes(
            of: UnsafeRawPointer(source + last).loadUnaligned(as: SIMD8<Float>.self), as: SIMD8<Float>.self)
    }
}

/// `destination[x] += source[x]` for `count` floats.
@inline(__always)
func addRow(from source: UnsafePointer<Float>, to destination: UnsafeMutablePointer<Float>, count: Int) {
    var x = 0
    while x + 4 <= count {
        let sum = UnsafeRawPointer(destination + x).loadUnaligned(as: SIMD4<Float>.self)
            + UnsafeRawPointer(source + x).loadUnaligned(as: SIMD4<Float>.self)
        UnsafeMutableRawPointer(destination + x).storeBytes(of: sum, as: SIMD4<Float>.self)
        x += 4
    }
    while x < count { destination[x] += source[x]; x += 1 }
}
