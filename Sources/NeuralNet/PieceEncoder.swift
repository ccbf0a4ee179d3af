import TensorKit

/// The piece encoder: the tutorial's `g_1` applied to every piece,
///
///     Conv2d(C → h, k×k, padding k/2) → MaxPool2d(2) → ReLU → BatchNorm2d(h)   (× blocks)
///
/// Input rows are pieces `[rows, C·p·p]`, output rows their flattened features `[rows, h·s²]`.
/// Block `b` has its convolution at `g_1.(4b)` and its BatchNorm at `g_1.(4b+3)`, the indices of
/// PyTorch's `nn.Sequential`. In training mode BatchNorm uses the statistics of all rows.
///
/// Performance: each piece is convolved, pooled and rectified while its im2col matrix and feature
/// maps are still in cache (one small sgemm per piece), pieces are split over the pass's workers,
/// and per-worker partial sums reduce in worker order.
public final class PieceEncoder: JigsawStage {
    /// One convolution per block (`g_1.0`, `g_1.4`, …).
    public let convolutions: [Conv2d]
    /// One BatchNorm per block (`g_1.3`, `g_1.7`, …).
    public let normalisations: [BatchNorm2d]
    public let channels: Int
    public let pieceSize: Int
    let pool = MaxPool2d(kernelSize: 2)
    private var workspace: Workspace?

    /// - Parameters:
    ///   - blocks: convolution blocks (at least 1).
    ///   - generator: draws the initial weights, block by block.
    public init(channels: Int, pieceSize: Int, hiddenChannels: Int, kernelSize: Int, blocks: Int,
                generator: inout SeededGenerator) {
        precondition(blocks >= 1, "the piece encoder needs a convolution block")
        self.channels = channels
        self.pieceSize = pieceSize
        var convolutions: [Conv2d] = []
        var normalisations: [BatchNorm2d] = []
        for block in 0..<blocks {
            convolutions.append(Conv2d(
                name: "g_1.\(4 * block)", inputChannels: block == 0 ? channels : hiddenChannels,
                outputChannels: hiddenChannels, kernelSize: kernelSize, generator: &generator))
            normalisations.append(BatchNorm2d(name: "g_1.\(4 * block + 3)", channels: hiddenChannels))
        }
        self.convolutions = convolutions
        self.normalisations = normalisations
    }

    public var parameters: [Parameter] {
        zip(convolutions, normalisations).flatMap { $0.parameters + $1.parameters }
    }

    public var buffers: [Buffer] { normalisations.flatMap(\.buffers) }

    public var outputFeatures: Int {
        var side = pieceSize
        for _ in convolutions { side /= 2 }
        return (convolutions.last?.outputChannels ?? 0) * side * side
    }

    public func checkParameterShapes() {
        for convolution in convolutions { convolution.checkParameterShapes() }
        for normalisation in normalisations { normalisation.checkParameterShapes() }
    }

    public func prepare(_ pass: StagePass) {
        if let workspace, workspace.pieceCount == pass.rows, workspace.workers == pass.workers { return }
        workspace = Workspace(encoder: self, pieceCount: pass.rows, workers: pass.workers)
    }

    private var work: Workspace {
        guard let workspace else { preconditionFailure("PieceEncoder used before prepare") }
        return workspace
    }

    public var activations: UnsafeMutablePointer<Float> { work.blocks[convolutions.count - 1].normalised.pointer }
    public var activationGradient: UnsafeMutablePointer<Float> { work.blocks[convolutions.count - 1].normalisedGradient.pointer }

    public func forward(_ pass: StagePass) {
        forward(pass, then: nil)
    }

    /// The forward; `then` runs on each worker's rows as soon as their features are final.
    func forward(_ pass: StagePass, then: ((Range<Int>) -> Void)?) {
        let work = work, workers = pass.workers, count = pass.rows, training = pass.isTraining
        var blockInput = pass.input
        for (block, (convolution, normalisation)) in zip(convolutions, normalisations).enumerated() {
            let geometry = work.blocks[block]
            let sums = normalisation.partials(workers: workers)
            convolution.weight.value.withUnsafeBufferPointer { weight in
                withOptionalPointer(convolution.bias?.value) { bias in
                    let weight = weight.baseAddress!
                    let source = blockInput
                    Parallel.forEachRowRange(count: count, workers: workers) { worker, range in
                        let scratch = work.scratch(worker)
                        for n in range {
                            convolution.im2col(sample: source + n * geometry.inputSize,
                                               height: geometry.side, width: geometry.side, columns: scratch.columns)
                            convolution.forwardSample(columns: scratch.columns, pixels: geometry.pixels,
                                                      weight: weight, bias: bias, output: scratch.convolved)
                            pool.forwardSample(input: scratch.convolved, channels: geometry.channels,
                                               height: geometry.side, width: geometry.side,
                                               output: geometry.rectified.pointer + n * geometry.outputSize,
                                               argmax: geometry.argmax.pointer + n * geometry.outputSize,
                                               rectify: true)
                        }
                        if training {
                            normalisation.accumulateMoments(input: geometry.rectified.pointer, samples: range,
                                                            planeSize: geometry.outputPlane,
                                                            sums: sums + worker * 2 * geometry.channels)
                        }
                    }
                }
            }
            if training {
                for worker in 1..<max(workers, 1) {
                    for i in 0..<(2 * geometry.channels) { sums[i] += sums[worker * 2 * geometry.channels + i] }
                }
                normalisation.finishMoments(sums: sums, count: count * geometry.outputPlane, updateRunningStatistics: true)
            } else {
                normalisation.useRunningStatistics()
            }
            Parallel.forEachRowRange(count: count, workers: workers) { _, range in
                normalisation.normalise(input: geometry.rectified.pointer, output: geometry.normalised.pointer,
                                        samples: range, planeSize: geometry.outputPlane)
                if block == convolutions.count - 1 { then?(range) }
            }
            blockInput = UnsafePointer(geometry.normalised.pointer)
        }
    }

    public func backward(_ pass: StagePass) {
        let work = work, workers = pass.workers, count = pass.rows
        let input = pass.input
        for block in stride(from: convolutions.count - 1, through: 0, by: -1) {
            let geometry = work.blocks[block]
            let convolution = convolutions[block], normalisation = normalisations[block]
            let sums = normalisation.partials(workers: workers)
            Parallel.forEachRowRange(count: count, workers: workers) { worker, range in
                normalisation.accumulateGradientSums(outputGradient: geometry.normalisedGradient.pointer,
                                                     input: geometry.rectified.pointer, samples: range,
                                                     planeSize: geometry.outputPlane,
                                                     sums: sums + worker * 2 * geometry.channels)
            }
            for worker in 1..<max(workers, 1) {
                for i in 0..<(2 * geometry.channels) { sums[i] += sums[worker * 2 * geometry.channels + i] }
            }
            normalisation.finishGradient(sums: sums, count: count * geometry.outputPlane)
            let source = block == 0 ? input : UnsafePointer(work.blocks[block - 1].normalised.pointer)
            let inputGradient = block == 0 ? nil : work.blocks[block - 1].normalisedGradient.pointer
            let weightSize = convolution.weight.value.count
            let hasBias = convolution.bias != nil
            convolution.weight.value.withUnsafeBufferPointer { weight in
                let weight = weight.baseAddress!
                Parallel.forEachRowRange(count: count, workers: workers) { worker, range in
                    let scratch = work.scratch(worker)
                    scratch.weightGradient.update(repeating: 0, count: weightSize + geometry.channels)
                    for n in range {
                        // BatchNorm backward fused with the ReLU mask (its input is the ReLU output).
                        normalisation.inputGradient(outputGradient: geometry.normalisedGradient.pointer,
                                                    input: geometry.rectified.pointer,
                                                    inputGradient: geometry.rectifiedGradient.pointer,
                                                    samples: n..<(n + 1), planeSize: geometry.outputPlane,
                                                    rectifiedInput: true)
                        pool.backwardSample(outputGradient: geometry.rectifiedGradient.pointer + n * geometry.outputSize,
                                            argmax: geometry.argmax.pointer + n * geometry.outputSize,
                                            channels: geometry.channels, height: geometry.side, width: geometry.side,
                                            inputGradient: scratch.convolved)
                        convolution.im2col(sample: source + n * geometry.inputSize,
                                           height: geometry.side, width: geometry.side, columns: scratch.columns)
                        convolution.accumulateSample(outputGradient: scratch.convolved, columns: scratch.columns,
                                                     pixels: geometry.pixels, weightGradient: scratch.weightGradient,
                                                     biasGradient: hasBias ? scratch.weightGradient + weightSize : nil)
                        if let inputGradient {
                            let sample = inputGradient + n * geometry.inputSize
                            sample.update(repeating: 0, count: geometry.inputSize)
                            convolution.columnsGradientSample(outputGradient: scratch.convolved,
                                                              pixels: geometry.pixels, weight: weight,
                                                              columnsGradient: scratch.columnsGradient)
                            convolution.col2imAdd(columns: scratch.columnsGradient, height: geometry.side,
                                                  width: geometry.side, sampleGradient: sample)
                        }
                    }
                }
            }
            convolution.weight.gradient.withUnsafeMutableBufferPointer { g in
                for worker in 0..<workers {
                    let partial = work.scratch(worker).weightGradient
                    for i in 0..<weightSize { g[i] += partial[i] }
                }
            }
            withOptionalGradient(convolution.bias) { g in
                guard let g else { return }
                for worker in 0..<workers {
                    let partial = work.scratch(worker).weightGradient + weightSize
                    for o in 0..<geometry.channels { g[o] += partial[o] }
                }
            }
        }
    }
}

extension PieceEncoder {
    /// Buffers of one forward/backward pass, sized for a piece count and kept between steps.
    final class Workspace {
        /// Sizes and per-block activations.
        final class Block {
            let channels: Int        // output channels
            let side: Int            // input side (= convolution output side)
            let pixels: Int          // side²
            let inputSize: Int       // input channels · side²
            let outputPlane: Int     // pooled side²
            let outputSize: Int      // channels · pooled side²
            let rectified: FloatBuffer          // pooled + ReLU, the BatchNorm input
            let argmax: ByteBuffer
            let normalised: FloatBuffer         // BatchNorm output
            let rectifiedGradient: FloatBuffer
            let normalisedGradient: FloatBuffer

            init(inputChannels: Int, channels: Int, side: Int, pieceCount: Int) {
                self.channels = channels
                self.side = side
                pixels = side * side
                inputSize = inputChannels * pixels
                outputPlane = (side / 2) * (side / 2)
                outputSize = channels * outputPlane
                rectified = FloatBuffer(count: pieceCount * outputSize)
                argmax = ByteBuffer(count: pieceCount * outputSize)
                normalised = FloatBuffer(count: pieceCount * outputSize)
                rectifiedGradient = FloatBuffer(count: pieceCount * outputSize)
                normalisedGradient = FloatBuffer(count: pieceCount * outputSize)
            }
        }

        /// Per-worker scratch, small enough to stay in cache while one piece is processed.
        struct Scratch {
            let columns: UnsafeMutablePointer<Float>
            let columnsGradient: UnsafeMutablePointer<Float>
            let convolved: UnsafeMutablePointer<Float>
            let weightGradient: UnsafeMutablePointer<Float>
        }

        let pieceCount: Int
        let workers: Int
        let blocks: [Block]
        private let scratchBuffer: FloatBuffer
        private let columnsSize: Int, convolvedSize: Int, weightSize: Int

        init(encoder: PieceEncoder, pieceCount: Int, workers: Int) {
            self.pieceCount = pieceCount
            self.workers = workers
            var blocks: [Block] = []
            var side = encoder.pieceSize, channels = encoder.channels
            var columns = 0, convolved = 0, weights = 0
            for convolution in encoder.convolutions {
                let (hidden, kernel) = (convolution.outputChannels, convolution.kernelSize)
                blocks.append(Block(inputChannels: channels, channels: hidden, side: side, pieceCount: pieceCount))
                columns = max(columns, channels * kernel * kernel * side * side)
                convolved = max(convolved, hidden * side * side)
                weights = max(weights, hidden * channels * kernel * kernel + hidden)
                side /= 2
                channels = hidden
            }
            self.blocks = blocks
            // Round each region to 16 floats so workers never share a cache line.
            func rounded(_ n: Int) -> Int { (n + 15) / 16 * 16 }
            columnsSize = rounded(columns)
            convolvedSize = rounded(convolved)
            weightSize = rounded(weights)
            scratchBuffer = FloatBuffer(count: workers * (2 * columnsSize + convolvedSize + weightSize))
        }

        func scratch(_ worker: Int) -> Scratch {
            let base = scratchBuffer.pointer + worker * (2 * columnsSize + convolvedSize + weightSize)
            return Scratch(columns: base, columnsGradient: base + columnsSize,
                           convolved: base + 2 * columnsSize, weightGradient: base + 2 * columnsSize + convolvedSize)
        }
    }
}
