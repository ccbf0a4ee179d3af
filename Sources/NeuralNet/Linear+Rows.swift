/// Row-parallel kernels of a Linear layer for the network stages: rows are split over workers and
/// each worker calls BLAS on chunks small enough (``Linear/rowsPerSingleThreadedCall``) that
/// OpenBLAS never wakes its own threads inside a parallel section.
extension Linear {
    /// The weight and bias gradient sizes, rounded to 16 floats so workers never share a cache line.
    var partialStride: Int { (weight.value.count + (bias?.value.count ?? 0) + 15) / 16 * 16 }

    /// Rows per chunk: the largest power of two within ``rowsPerSingleThreadedCall`` and
    /// ``Parallel/rowGranule``, so chunk boundaries fall on one grid whatever the worker count.
    var rowsPerChunk: Int {
        var chunk = 1
        while chunk * 2 <= min(rowsPerSingleThreadedCall, Parallel.rowGranule) { chunk *= 2 }
        return chunk
    }

    /// Calls `body(start, rows)` for consecutive chunks of `range`, cut at multiples of
    /// ``rowsPerChunk`` (so a row meets the same BLAS call for any split of the rows that is cut
    /// at multiples of ``Parallel/rowGranule``).
    func forEachChunk(of range: Range<Int>, _ body: (Int, Int) -> Void) {
        let chunk = rowsPerChunk
        var start = range.lowerBound
        while start < range.upperBound {
            let rows = min((start / chunk + 1) * chunk, range.upperBound) - start
            body(start, rows)
            start += rows
        }
    }

    /// `output[r] = W·input[r] (+ b)` for the rows of `range`.
    func forward(input: UnsafePointer<Float>, range: Range<Int>, output: UnsafeMutablePointer<Float>) {
        forEachChunk(of: range) { start, rows in
            forward(input: input + start * inputFeatures, rows: rows, output: output + start * outputFeatures)
        }
    }

    /// For the rows of `range`: the weight and bias gradients into `partial` (a worker's zeroed
    /// sums, weight then bias) and, when `inputGradient` is given, `dX = dY·W` (overwriting, or
    /// adding when `accumulating`).
    func backward(input: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>, range: Range<Int>,
                  partial: UnsafeMutablePointer<Float>, inputGradient: UnsafeMutablePointer<Float>?,
                  accumulating: Bool = false) {
        let weightSize = weight.value.count
        forEachChunk(of: range) { start, rows in
            let dY = outputGradient + start * outputFeatures
            accumulateGradients(input: input + start * inputFeatures, outputGradient: dY, rows: rows,
                                weightGradient: partial, biasGradient: bias == nil ? nil : partial + weightSize)
            if let inputGradient {
                self.inputGradient(outputGradient: dY, rows: rows, inputGradient: inputGradient + start * inputFeatures,
                                   accumulating: accumulating)
            }
        }
    }

    /// Adds the per-worker partial gradients to the parameters, in worker order (so the sums repeat
    /// exactly for a given thread count).
    func reducePartials(_ partials: UnsafePointer<Float>, workers: Int) {
        let weightSize = weight.value.count, stride = partialStride
        weight.gradient.withUnsafeMutableBufferPointer { g in
            for worker in 0..<workers {
                let partial = partials + worker * stride
                for i in 0..<weightSize { g[i] += partial[i] }
            }
        }
        guard let bias else { return }
        bias.gradient.withUnsafeMutableBufferPointer { g in
            for worker in 0..<workers {
                let partial = partials + worker * stride + weightSize
                for i in 0..<g.count { g[i] += partial[i] }
            }
        }
    }
}

/// A row-local stage built on one Linear layer (the hidden layer, the score head): its parameters,
/// width and buffers come from the layer.
protocol LinearStage: RowLocalStage {
    var linear: Linear { get }
    var storage: LinearStageBuffers { get set }
}

extension LinearStage {
    public var parameters: [Parameter] { linear.parameters }
    public var outputFeatures: Int { linear.outputFeatures }
    public var activations: UnsafeMutablePointer<Float> { storage.rows.output.pointer }
    public var activationGradient: UnsafeMutablePointer<Float> { storage.rows.gradient.pointer }
    public func checkParameterShapes() { linear.checkParameterShapes() }
    public func prepare(_ pass: StagePass) { storage.prepare(pass, linear: linear) }
}

/// The buffers of a stage built on one Linear layer: its output rows and their gradient, and the
/// per-worker partial gradients of the layer.
struct LinearStageBuffers {
    private(set) var rows = RowBuffers()
    private(set) var partials = FloatBuffer(count: 0)
    private var workers = 0

    /// Sizes the buffers for `pass` (reallocated only when the geometry changes).
    mutating func prepare(_ pass: StagePass, linear: Linear) {
        if rows.prepare(rows: pass.rows, width: linear.outputFeatures) || workers != pass.workers {
            workers = pass.workers
            partials = FloatBuffer(count: workers * linear.partialStride)
        }
    }

    /// The layer's backward over the pass's rows from `dY` (`before` runs first on each worker's
    /// range, e.g. an activation's mask), partial gradients reduced in worker order.
    func backward(_ linear: Linear, pass: StagePass, outputGradient: UnsafeMutablePointer<Float>,
                  before: (Range<Int>) -> Void = { _ in }) {
        let (input, partials, stride, inputGradient) = (pass.input, partials.pointer, linear.partialStride, pass.inputGradient)
        Parallel.forEachRowRange(count: pass.rows, workers: pass.workers) { worker, range in
            before(range)
            let partial = partials + worker * stride
            partial.update(repeating: 0, count: stride)
            linear.backward(input: input, outputGradient: outputGradient, range: range, partial: partial,
                            inputGradient: inputGradient)
        }
        linear.reducePartials(partials, workers: pass.workers)
    }
}

/// Buffers sized for a row count, reallocated only when it changes.
struct RowBuffers {
    private(set) var rows = -1
    private(set) var output = FloatBuffer(count: 0)
    private(set) var gradient = FloatBuffer(count: 0)

    /// Whether the buffers had to be (re)allocated for `rows × width`.
    @discardableResult
    mutating func prepare(rows: Int, width: Int) -> Bool {
        guard rows != self.rows else { return false }
        self.rows = rows
        output = FloatBuffer(count: rows * width)
        gradient = FloatBuffer(count: rows * width)
        return true
    }
}
