import TensorKit

/// Batch normalisation over the channels of NCHW tensors (PyTorch's `nn.BatchNorm2d`).
///
/// Training mode normalises with the batch statistics of each channel over `m = N·H·W` values,
/// `x̂ = (x − μ) / √(σ² + ε)` with the biased variance `σ² = Σ(x − μ)² / m`, outputs
/// `y = γ·x̂ + β`, and moves the running averages with momentum 0.1:
/// `running_mean ← 0.9·running_mean + 0.1·μ`,
/// `running_var ← 0.9·running_var + 0.1·σ²·m/(m − 1)` (the unbiased variance, as PyTorch does).
/// Evaluation mode uses the running statistics instead.
///
/// Backward in training mode goes through the batch statistics (Ioffe & Szegedy 2015, §3):
/// `∂L/∂x = (γ/√(σ²+ε)) · (dy − mean(dy) − x̂ · mean(dy · x̂))`, `∂L/∂γ = Σ dy·x̂`, `∂L/∂β = Σ dy`.
/// Sums are accumulated in Double.
public final class BatchNorm2d {
    public let channels: Int
    public let momentum: Float
    public let epsilon: Float
    /// `γ`, `[channels]`, initialised to 1.
    public let weight: Parameter
    /// `β`, `[channels]`, initialised to 0.
    public let bias: Parameter
    /// `[channels]`, initialised to 0.
    public let runningMean: Buffer
    /// `[channels]`, initialised to 1.
    public let runningVariance: Buffer
    /// Batch statistics (true) or running statistics (false).
    public var isTraining = true
    /// Workers used by ``forward(_:)`` and ``backward(_:)``.
    public var threadCount: Int = defaultThreadCount()

    /// Per channel: mean, 1/√(var+ε), scale γ/√(var+ε), shift β − μ·scale, then the backward
    /// coefficients a, b, d of `dx = a·dy + b·x + d`.
    let coefficients: FloatBuffer
    /// Per worker: Σ and Σ of squares (or Σdy and Σdy·x), `2·channels` doubles each.
    private var partialSums: UnsafeMutablePointer<Double>
    private var partialWorkers = 0
    private var usedBatchStatistics = true
    private var cachedInput: Tensor?

    /// - Parameter name: the prefix of the tensor names (`g_1.3` gives `g_1.3.weight`, `g_1.3.bias`,
    ///   `g_1.3.running_mean`, `g_1.3.running_var`).
    public init(name: String, channels: Int, momentum: Float = 0.1, epsilon: Float = 1e-5) {
        precondition(channels > 0, "BatchNorm2d needs channels")
        self.channels = channels
        self.momentum = momentum
        self.epsilon = epsilon
        weight = Parameter(name: name + ".weight", value: Tensor(shape: [channels], repeating: 1))
        bias = Parameter(name: name + ".bias", value: Tensor(shape: [channels]))
        runningMean = Buffer(name: name + ".running_mean", value: Tensor(shape: [channels]))
        runningVariance = Buffer(name: name + ".running_var", value: Tensor(shape: [channels], repeating: 1))
        coefficients = FloatBuffer(count: 7 * channels)
        partialSums = .allocate(capacity: 2 * channels)
        partialWorkers = 1
    }

    deinit { partialSums.deallocate() }

    public var parameters: [Parameter] { [weight, bias] }

    func checkParameterShapes() {
        weight.checkShape()
        bias.checkShape()
        runningMean.checkShape()
        runningVariance.checkShape()
    }
    public var buffers: [Buffer] { [runningMean, runningVariance] }

    private var mean: UnsafeMutablePointer<Float> { coefficients.pointer }
    private var inverseStd: UnsafeMutablePointer<Float> { coefficients.pointer + channels }
    private var scale: UnsafeMutablePointer<Float> { coefficients.pointer + 2 * channels }
    private var shift: UnsafeMutablePointer<Float> { coefficients.pointer + 3 * channels }
    private var gradientScale: UnsafeMutablePointer<Float> { coefficients.pointer + 4 * channels }
    private var gradientSlope: UnsafeMutablePointer<Float> { coefficients.pointer + 5 * channels }
    private var gradientOffset: UnsafeMutablePointer<Float> { coefficients.pointer + 6 * channels }

    /// `2·channels` zeroed doubles for each of `workers` workers.
    func partials(workers: Int) -> UnsafeMutablePointer<Double> {
        partialSums(workers: workers, zeroed: true)
    }

    /// The per-worker sums, zeroed or as the last accumulation left them.
    func partialSums(workers: Int, zeroed: Bool) -> UnsafeMutablePointer<Double> {
        if partialWorkers < workers {
            partialSums.deallocate()
            partialSums = .allocate(capacity: 2 * channels * workers)
            partialSums.initialize(repeating: 0, count: 2 * channels * workers)
            partialWorkers = workers
        }
        if zeroed { partialSums.update(repeating: 0, count: 2 * channels * workers) }
        return partialSums
    }

    /// Adds the worker partials into the first worker's slot, in worker order.
    private func reducePartials(workers: Int) -> UnsafeMutablePointer<Double> {
        for worker in 1..<max(workers, 1) {
            let partial = partialSums + worker * 2 * channels
            for i in 0..<(2 * channels) { partialSums[i] += partial[i] }
        }
        return partialSums
    }

    // MARK: - Kernels over sample ranges

    /// Adds `Σx` and `Σx²` per channel of `samples` into `sums[0..<C]` and `sums[C..<2C]`.
    func accumulateMoments(input: UnsafePointer<Float>, samples: Range<Int>, planeSize: Int,
                           sums: UnsafeMutablePointer<Double>) {
        for n in samples {
            for c in 0..<channels {
                // Float partial sums over one plane (a few dozen values), Double across planes.
                let plane = input + (n * channels + c) * planeSize
                var s = SIMD4<Float>(repeating: 0), s2 = SIMD4<Float>(repeating: 0)
                var i = 0
                while i + 4 <= planeSize {
                    let x = UnsafeRawPointer(plane + i).loadUnaligned(as: SIMD4<Float>.self)
                    s += x
                    s2 += x * x
                    i += 4
                }
                var total = Double(s.sum()), squares = Double(s2.sum())
                while i < planeSize {
                    let x = Double(plane[i])
                    total += x
                    squares += x * x
                    i += 1
                }
                sums[c] += total
                sums[channels + c] += squares
            }
        }
    }

    /// Turns the moment sums of `count` values per channel into the normalisation of this batch
    /// and, when `updateRunningStatistics`, moves the running averages.
    func finishMoments(sums: UnsafePointer<Double>, count: Int, updateRunningStatistics: Bool) {
        precondition(count > 1, "BatchNorm2d in training mode needs more than one value per channel")
        let m = Double(count)
        let momentum = Double(self.momentum)
        runningMean.value.withUnsafeMutableBufferPointer { runningMean in
            runningVariance.value.withUnsafeMutableBufferPointer { runningVariance in
                weight.value.withUnsafeBufferPointer { gamma in
                    bias.value.withUnsafeBufferPointer { beta in
                        for c in 0..<channels {
                            let mu = sums[c] / m
                            let variance = max(0, sums[channels + c] / m - mu * mu)
                            let inverse = 1 / (variance + Double(epsilon)).squareRoot()
                            mean[c] = Float(mu)
                            inverseStd[c] = Float(inverse)
                            scale[c] = Float(Double(gamma[c]) * inverse)
                            shift[c] = Float(Double(beta[c]) - mu * Double(gamma[c]) * inverse)
                            if updateRunningStatistics {
                                runningMean[c] = Float((1 - momentum) * Double(runningMean[c]) + momentum * mu)
                                let unbiased = variance * m / (m - 1)
                                runningVariance[c] = Float((1 - momentum) * Double(runningVariance[c])
                                                           + momentum * unbiased)
                            }
                        }
                    }
                }
            }
        }
        usedBatchStatistics = true
    }

    /// Uses the running statistics for the next normalisation (evaluation mode).
    func useRunningStatistics() {
        runningMean.value.withUnsafeBufferPointer { runningMean in
            runningVariance.value.withUnsafeBufferPointer { runningVariance in
                weight.value.withUnsafeBufferPointer { gamma in
                    bias.value.withUnsafeBufferPointer { beta in
                        for c in 0..<channels {
                            let inverse = 1 / (Double(runningVariance[c]) + Double(epsilon)).squareRoot()
                            mean[c] = runningMean[c]
                            inverseStd[c] = Float(inverse)
                            scale[c] = Float(Double(gamma[c]) * inverse)
                            shift[c] = Float(Double(beta[c]) - Double(runningMean[c]) * Double(gamma[c]) * inverse)
                        }
                    }
                }
            }
        }
        usedBatchStatistics = false
    }

    /// `y = scale[c]·x + shift[c]` for `samples`.
    func normalise(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                   samples: Range<Int>, planeSize: Int) {
        for n in samples {
            for c in 0..<channels {
                let offset = (n * channels + c) * planeSize
                let (a, b) = (scale[c], shift[c])
                let (x, y) = (input + offset, output + offset)
                for i in 0..<planeSize { y[i] = a * x[i] + b }
            }
        }
    }

    /// Adds `Σdy` and `Σdy·x` per channel of `samples` into `sums[0..<C]` and `sums[C..<2C]`.
    func accumulateGradientSums(outputGradient: UnsafePointer<Float>, input: UnsafePointer<Float>,
                                samples: Range<Int>, planeSize: Int, sums: UnsafeMutablePointer<Double>) {
        for n in samples {
            for c in 0..<channels {
                let offset = (n * channels + c) * planeSize
                let (dy, x) = (outputGradient + offset, input + offset)
                var s = SIMD4<Float>(repeating: 0), sx = SIMD4<Float>(repeating: 0)
                var i = 0
                while i + 4 <= planeSize {
                    let g = UnsafeRawPointer(dy + i).loadUnaligned(as: SIMD4<Float>.self)
                    s += g
                    sx += g * UnsafeRawPointer(x + i).loadUnaligned(as: SIMD4<Float>.self)
                    i += 4
                }
                var total = Double(s.sum()), products = Double(sx.sum())
                while i < planeSize {
                    total += Double(dy[i])
                    products += Double(dy[i]) * Double(x[i])
                    i += 1
                }
                sums[c] += total
                sums[channels + c] += products
            }
        }
    }

    /// From `Σdy` and `Σdy·x` over `count` values: accumulates `∂L/∂γ`, `∂L/∂β` and prepares
    /// `dx = a·dy + b·x + d` per channel.
    func finishGradient(sums: UnsafePointer<Double>, count: Int) {
        let m = Double(count)
        weight.value.withUnsafeBufferPointer { gamma in
            weight.gradient.withUnsafeMutableBufferPointer { gammaGradient in
                bias.gradient.withUnsafeMutableBufferPointer { betaGradient in
                    for c in 0..<channels {
                        let mu = Double(mean[c]), inverse = Double(inverseStd[c]), g = Double(gamma[c])
                        let sumDy = sums[c]
                        let sumDyXHat = inverse * (sums[channels + c] - mu * sumDy)
                        gammaGradient[c] += Float(sumDyXHat)
                        betaGradient[c] += Float(sumDy)
                        let a = g * inverse
                        if usedBatchStatistics {
                            // dx = a·(dy − Σdy/m − x̂·Σdy·x̂/m), x̂ = (x − μ)·inverse.
                            let slope = -a * inverse * sumDyXHat / m
                            gradientScale[c] = Float(a)
                            gradientSlope[c] = Float(slope)
                            gradientOffset[c] = Float(-a * sumDy / m - slope * mu)
                        } else {
                            gradientScale[c] = Float(a)
                            gradientSlope[c] = 0
                            gradientOffset[c] = 0
                        }
                    }
                }
            }
        }
    }

    /// `dx = a·dy + b·x + d` for `samples`; with `rectifiedInput` also masks by `x > 0`, which is
    /// the backward of a ReLU whose output is this layer's input.
    func inputGradient(outputGradient: UnsafePointer<Float>, input: UnsafePointer<Float>,
                       inputGradient: UnsafeMutablePointer<Float>, samples: Range<Int>, planeSize: Int,
                       rectifiedInput: Bool = false) {
        for n in samples {
            for c in 0..<channels {
                let offset = (n * channels + c) * planeSize
                let (a, b, d) = (gradientScale[c], gradientSlope[c], gradientOffset[c])
                let (dy, x, dx) = (outputGradient + offset, input + offset, inputGradient + offset)
                let (av, bv, dv) = (SIMD4<Float>(repeating: a), SIMD4<Float>(repeating: b), SIMD4<Float>(repeating: d))
                let zero = SIMD4<Float>(repeating: 0)
                var i = 0
                while i + 4 <= planeSize {
                    let xi = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD4<Float>.self)
                    var value = av * UnsafeRawPointer(dy + i).loadUnaligned(as: SIMD4<Float>.self) + bv * xi + dv
                    if rectifiedInput { value.replace(with: zero, where: .!(xi .> zero)) }
                    UnsafeMutableRawPointer(dx + i).storeBytes(of: value, as: SIMD4<Float>.self)
                    i += 4
                }
                while i < planeSize {
                    let value = a * dy[i] + b * x[i] + d
                    dx[i] = rectifiedInput && !(x[i] > 0) ? 0 : value
                    i += 1
                }
            }
        }
    }

    // MARK: - Batch interface

    /// Normalises a batch `[N, C, H, W]` (batch statistics in training mode, running ones in
    /// evaluation mode); keeps the input for ``backward(_:)``.
    public func forward(_ input: Tensor) -> Tensor {
        precondition(input.rank == 4 && input.shape[1] == channels,
                     "BatchNorm2d expects [N, \(channels), H, W], got \(input.shape)")
        let count = input.shape[0], planeSize = input.shape[2] * input.shape[3]
        let workers = max(1, min(threadCount, count))
        checkParameterShapes()
        cachedInput = input
        var output = Tensor(shape: input.shape)
        input.withUnsafeBufferPointer { x in
            let x = x.baseAddress!
            if isTraining {
                let sums = partials(workers: workers)
                Parallel.forEachRange(count: count, workers: workers) { worker, range in
                    accumulateMoments(input: x, samples: range, planeSize: planeSize,
                                      sums: sums + worker * 2 * channels)
                }
                finishMoments(sums: reducePartials(workers: workers), count: count * planeSize,
                              updateRunningStatistics: true)
            } else {
                useRunningStatistics()
            }
            output.withUnsafeMutableBufferPointer { y in
                let y = y.baseAddress!
                Parallel.forEachRange(count: count, workers: workers) { _, range in
                    normalise(input: x, output: y, samples: range, planeSize: planeSize)
                }
            }
        }
        return output
    }

    /// Accumulates `∂L/∂γ`, `∂L/∂β` from `dY` and returns `∂L/∂x` for the last forward batch.
    public func backward(_ outputGradient: Tensor) -> Tensor {
        guard let input = cachedInput else { preconditionFailure("BatchNorm2d.backward before forward") }
        precondition(outputGradient.shape == input.shape,
                     "BatchNorm2d gradient \(outputGradient.shape) vs input \(input.shape)")
        let count = input.shape[0], planeSize = input.shape[2] * input.shape[3]
        let workers = max(1, min(threadCount, count))
        checkParameterShapes()
        var inputGradient = Tensor(shape: input.shape)
        input.withUnsafeBufferPointer { x in
            outputGradient.withUnsafeBufferPointer { dy in
                inputGradient.withUnsafeMutableBufferPointer { dx in
                    let (x, dy, dx) = (x.baseAddress!, dy.baseAddress!, dx.baseAddress!)
                    let sums = partials(workers: workers)
                    Parallel.forEachRange(count: count, workers: workers) { worker, range in
                        accumulateGradientSums(outputGradient: dy, input: x, samples: range, planeSize: planeSize,
                                               sums: sums + worker * 2 * channels)
                    }
                    finishGradient(sums: reducePartials(workers: workers), count: count * planeSize)
                    Parallel.forEachRange(count: count, workers: workers) { _, range in
                        self.inputGradient(outputGradient: dy, input: x, inputGradient: dx, samples: range,
                                           planeSize: planeSize)
                    }
                }
            }
        }
        return inputGradient
    }
}
