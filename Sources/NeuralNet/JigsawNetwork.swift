import TensorKit

/// The jigsaw scoring network of the Gumbel-Sinkhorn tutorial (Mena et al. 2018, §4.2;
/// PAPERS.md §3): every piece goes through the same small CNN and its output is that piece's row
/// of the score matrix.
///
///     g1: Conv2d(C → h, k×k, padding k/2) → MaxPool2d(2) → ReLU → BatchNorm2d(h)   (×(1 + extra))
///     g2: Linear(h·(p/2ᵇ)² → n, no bias)                 or, with hidden units u,
///     g2: Linear(h·(p/2ᵇ)² → u) → ReLU → Linear(u → n, no bias)
///
/// With ``JigsawNetworkConfiguration/setContext`` the hidden layer also sees the whole puzzle:
/// `hᵢ = ReLU(A·fᵢ + a + C·mean_j φ(f_j))`, where `f` are the flattened features of the puzzle's
/// pieces, `C` (`context.weight`, no bias) is a weight of its own and `φ` is the identity or, with
/// context units, `ReLU(E·f + e)` (`context.embed`). The mean is taken over the pieces of one
/// puzzle, so the scores stay permutation-equivariant: scrambling the pieces only reorders the rows.
///
/// Input pieces `[B, n, C, p, p]` (already normalised), output scores `[B, n, n]`; row `i` of
/// puzzle `b` scores scrambled piece `i` over the `n` grid cells. All `B·n` pieces go through the
/// CNN together, so BatchNorm's training statistics are taken over every piece of the batch,
/// as PyTorch does when all pieces are passed in one call. (The tutorial's own loop calls `g_1`
/// once per piece position, so there each position has its own batch statistics and the running
/// averages move `n` times per batch; evaluation-mode scores are the same either way.)
///
/// Tensor names are the PyTorch `state_dict` keys of the tutorial's `SinkhornConvNet`
/// (`g_1.0.weight`, `g_1.0.bias`, `g_1.3.weight`, `g_1.3.bias`, `g_1.3.running_mean`,
/// `g_1.3.running_var`, `g_2.weight`), extended the way an `nn.Sequential` would be: block `b`
/// has its convolution at `g_1.(4b)` and its BatchNorm at `g_1.(4b+3)`; a hidden layer makes
/// `g_2` a sequence with `g_2.0` (hidden) and `g_2.2` (output).
///
/// Performance: each piece is convolved, pooled and rectified while its im2col matrix and
/// feature maps are still in cache (one small sgemm per piece), pieces are split over
/// ``threadCount`` workers, and every workspace is kept between calls, so a steady training loop
/// allocates only the returned score tensor. An instance is not safe to use from several threads
/// at once.
public final class JigsawNetwork: Module {
    public let configuration: JigsawNetworkConfiguration
    /// One convolution per block (`g_1.0`, `g_1.4`, …).
    public let convolutions: [Conv2d]
    /// One BatchNorm per block (`g_1.3`, `g_1.7`, …).
    public let normalisations: [BatchNorm2d]
    /// The optional hidden Linear layer (`g_2.0`).
    public let hiddenLayer: Linear?
    /// The output Linear layer without bias (`g_2` or `g_2.2`).
    public let outputLayer: Linear
    /// The set-context weight (`context.weight`, no bias) when the configuration asks for it.
    public let contextLayer: Linear?
    /// The per-piece context embedding `φ` (`context.embed`) when there are context units.
    public let contextEmbedding: Linear?
    /// The self-attention blocks over each puzzle's pieces after the hidden layer (`attention.0`, …).
    public let attentions: [SetAttention]
    /// Workers for the per-piece work.
    public var threadCount: Int = defaultThreadCount()
    /// Training mode (batch statistics, running averages updated) or evaluation mode.
    public var isTraining: Bool = true {
        didSet { for normalisation in normalisations { normalisation.isTraining = isTraining } }
    }

    let pool = MaxPool2d(kernelSize: 2)
    private var workspace: Workspace?
    private var cachedInput: Tensor?
    private var scores = Tensor(shape: [0])

    /// A network with PyTorch's default initialisation drawn from `seed`.
    ///
    /// - Throws: ``NeuralNetError/invalidConfiguration(_:)`` when the configuration is not valid.
    public init(configuration: JigsawNetworkConfiguration = JigsawNetworkConfiguration(), seed: UInt64 = 0) throws {
        try configuration.validate()
        self.configuration = configuration
        var generator = SeededGenerator(seed: seed)
        var convolutions: [Conv2d] = []
        var normalisations: [BatchNorm2d] = []
        for block in 0..<configuration.convolutionBlocks {
            convolutions.append(Conv2d(
                name: "g_1.\(4 * block)",
                inputChannels: block == 0 ? configuration.channels : configuration.hiddenChannels,
                outputChannels: configuration.hiddenChannels, kernelSize: configuration.kernelSize,
                generator: &generator))
            normalisations.append(BatchNorm2d(name: "g_1.\(4 * block + 3)", channels: configuration.hiddenChannels))
        }
        self.convolutions = convolutions
        self.normalisations = normalisations
        if configuration.hiddenUnits > 0 {
            hiddenLayer = Linear(name: "g_2.0", inputFeatures: configuration.featureCount,
                                 outputFeatures: configuration.hiddenUnits, generator: &generator)
            outputLayer = Linear(name: "g_2.2", inputFeatures: configuration.hiddenUnits,
                                 outputFeatures: configuration.pieceCount, bias: false, generator: &generator)
        } else {
            hiddenLayer = nil
            outputLayer = Linear(name: "g_2", inputFeatures: configuration.featureCount,
                                 outputFeatures: configuration.pieceCount, bias: false, generator: &generator)
        }
        contextLayer = configuration.setContext
            ? Linear(name: "context", inputFeatures: configuration.contextInputs,
                     outputFeatures: configuration.hiddenUnits, bias: false, generator: &generator)
            : nil
        contextEmbedding = configuration.contextUnits > 0
            ? Linear(name: "context.embed", inputFeatures: configuration.featureCount,
                     outputFeatures: configuration.contextUnits, generator: &generator)
            : nil
        attentions = (0..<configuration.attentionBlocks).map { block in
            SetAttention(name: "attention.\(block)", features: configuration.hiddenUnits,
                         heads: configuration.attentionHeads, headUnits: configuration.attentionHeadUnits,
                         generator: &generator)
        }
    }

    /// Builds the network described by a weights file's metadata and loads its tensors.
    ///
    /// - Throws: the errors of ``JigsawNetworkConfiguration/init(metadata:)`` and ``Module/load(_:)``.
    public convenience init(metadata: [String: String], tensors: [String: Tensor]) throws {
        try self.init(configuration: JigsawNetworkConfiguration(metadata: metadata))
        try load(tensors)
    }

    public var parameters: [Parameter] {
        var result: [Parameter] = []
        for (convolution, normalisation) in zip(convolutions, normalisations) {
            result += convolution.parameters + normalisation.parameters
        }
        if let hiddenLayer { result += hiddenLayer.parameters }
        if let contextEmbedding { result += contextEmbedding.parameters }
        if let contextLayer { result += contextLayer.parameters }
        for attention in attentions { result += attention.parameters }
        return result + outputLayer.parameters
    }

    public var buffers: [Buffer] { normalisations.flatMap(\.buffers) }

    /// Stops if a parameter or buffer was given another shape from outside (the kernels read
    /// them through raw pointers).
    func checkParameterShapes() {
        for convolution in convolutions { convolution.checkParameterShapes() }
        for normalisation in normalisations { normalisation.checkParameterShapes() }
        hiddenLayer?.checkParameterShapes()
        contextLayer?.checkParameterShapes()
        contextEmbedding?.checkParameterShapes()
        for attention in attentions { attention.checkParameterShapes() }
        outputLayer.checkParameterShapes()
    }

    /// The shape of one input batch of `batch` puzzles: `[batch, n, C, p, p]`.
    public func inputShape(batch: Int) -> [Int] {
        let c = configuration
        return [batch, c.pieceCount, c.channels, c.pieceSize, c.pieceSize]
    }
}

// MARK: - Forward and backward

extension JigsawNetwork {
    /// The scores `[B, n, n]` of a batch of scrambled pieces `[B, n, C, p, p]`.
    ///
    /// In training mode BatchNorm uses the statistics of all `B·n` pieces and updates its running
    /// averages; the input is kept for ``backward(_:)``.
    public func forward(_ pieces: Tensor) -> Tensor {
        let c = configuration
        precondition(pieces.rank == 5 && Array(pieces.shape.dropFirst()) == Array(inputShape(batch: 0).dropFirst()),
                     "JigsawNetwork expects \(inputShape(batch: pieces.shape.first ?? 0)), got \(pieces.shape)")
        let batch = pieces.shape[0], count = batch * c.pieceCount
        checkParameterShapes()
        let work = prepareWorkspace(pieceCount: count)
        cachedInput = pieces
        let workers = work.workers
        let outputShape = [batch, c.pieceCount, c.pieceCount]
        if scores.shape != outputShape { scores = Tensor(shape: outputShape) }
        scores.withUnsafeMutableBufferPointer { output in
        let output = output.baseAddress!
        pieces.withUnsafeBufferPointer { input in
            var blockInput = UnsafePointer(input.baseAddress!)
            for block in 0..<c.convolutionBlocks {
                let geometry = work.blocks[block]
                let convolution = convolutions[block], normalisation = normalisations[block]
                let sums = normalisation.partials(workers: workers)
                let training = isTraining
                convolution.weight.value.withUnsafeBufferPointer { weight in
                    withOptionalPointer(convolution.bias?.value) { bias in
                        let weight = weight.baseAddress!
                        let source = blockInput
                        Parallel.forEachRange(count: count, workers: workers) { worker, range in
                            let scratch = work.scratch(worker)
                            for n in range {
                                convolution.im2col(sample: source + n * geometry.inputSize,
                                                   height: geometry.side, width: geometry.side,
                                                   columns: scratch.columns)
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
                    normalisation.finishMoments(sums: sums, count: count * geometry.outputPlane,
                                                updateRunningStatistics: true)
                } else {
                    normalisation.useRunningStatistics()
                }
                let isLast = block == c.convolutionBlocks - 1
                // Without set context the head runs on each worker's pieces as soon as they are
                // normalised (up to the hidden layer when attention follows).
                let headNow = isLast && contextLayer == nil
                let hiddenOnly = !attentions.isEmpty
                Parallel.forEachRange(count: count, workers: workers) { _, range in
                    normalisation.normalise(input: geometry.rectified.pointer, output: geometry.normalised.pointer,
                                            samples: range, planeSize: geometry.outputPlane)
                    if headNow { headForward(work: work, pieces: range, scores: output, hiddenOnly: hiddenOnly) }
                }
                if isLast, let contextLayer {
                    if let contextEmbedding {
                        Parallel.forEachRange(count: count, workers: workers) { _, range in
                            embedForward(contextEmbedding, work: work, pieces: range)
                        }
                    }
                    contextForward(contextLayer, work: work, puzzles: batch)
                    Parallel.forEachRange(count: count, workers: workers) { _, range in
                        headForward(work: work, pieces: range, scores: output, hiddenOnly: hiddenOnly)
                    }
                }
                if isLast, !attentions.isEmpty {
                    for (index, attention) in attentions.enumerated() {
                        attention.forward(input: UnsafePointer(work.attentionInput(index)), rows: count,
                                          piecesPerPuzzle: c.pieceCount, workers: workers,
                                          result: work.attentionOutputs[index].pointer)
                    }
                    let final = UnsafePointer(work.attentionOutputs[attentions.count - 1].pointer)
                    Parallel.forEachRange(count: count, workers: workers) { _, range in
                        outputForward(input: final, pieces: range, scores: output)
                    }
                }
                blockInput = UnsafePointer(geometry.normalised.pointer)
            }
        }
        }
        return scores
    }

    /// `φ(f) = ReLU(E·f + e)` for a range of pieces, in row chunks that keep OpenBLAS on this thread.
    private func embedForward(_ embedding: Linear, work: Workspace, pieces: Range<Int>) {
        let c = configuration
        let features = UnsafePointer(work.blocks[c.convolutionBlocks - 1].normalised.pointer)
        let (featureCount, units) = (c.featureCount, c.contextUnits)
        var start = pieces.lowerBound
        while start < pieces.upperBound {
            let rows = min(embedding.rowsPerSingleThreadedCall, pieces.upperBound - start)
            let output = work.embedded.pointer + start * units
            embedding.forward(input: features + start * featureCount, rows: rows, output: output)
            ReLU.rectify(output, count: rows * units)
            start += rows
        }
    }

    /// The per-puzzle means of `φ(f)` `[B, m]` and their context terms `C·mean` `[B, u]`.
    private func contextForward(_ contextLayer: Linear, work: Workspace, puzzles: Int) {
        let c = configuration
        let (featureCount, n) = (c.contextInputs, c.pieceCount)
        let features = c.contextUnits > 0
            ? UnsafePointer(work.embedded.pointer)
            : UnsafePointer(work.blocks[c.convolutionBlocks - 1].normalised.pointer)
        let means = work.contextMeans.pointer
        Self.sumPerPuzzle(features, width: featureCount, piecesPerPuzzle: n, puzzles: puzzles, scale: 1 / Float(n),
                          into: means)
        contextLayer.forward(input: means, rows: puzzles, output: work.context.pointer)
    }

    /// `output[b] = scale · Σᵢ rows[b·n + i]` for rows of `width` floats, `n` rows per puzzle.
    private static func sumPerPuzzle(_ rows: UnsafePointer<Float>, width: Int, piecesPerPuzzle n: Int, puzzles: Int,
                                     scale: Float, into output: UnsafeMutablePointer<Float>) {
        for b in 0..<puzzles {
            let sum = output + b * width
            sum.update(repeating: 0, count: width)
            for i in 0..<n {
                let row = rows + (b * n + i) * width
                for k in 0..<width { sum[k] += row[k] }
            }
            if scale != 1 { for k in 0..<width { sum[k] *= scale } }
        }
    }

    /// The backward of ``contextForward(_:work:puzzles:)``: with `Sᵦ = Σᵢ ∂L/∂(pre-activation)ᵢ`
    /// over puzzle `b`, `∂L/∂C += Σᵦ Sᵦ·meanᵦᵀ` and every piece's `φ` gradient is `Cᵀ·Sᵦ / n`.
    private func contextBackward(_ contextLayer: Linear, work: Workspace, puzzles: Int) {
        let c = configuration
        let (featureCount, hiddenUnits, n) = (c.contextInputs, c.hiddenUnits, c.pieceCount)
        let sums = work.contextGradient.pointer
        Self.sumPerPuzzle(work.hiddenGradient.pointer, width: hiddenUnits, piecesPerPuzzle: n, puzzles: puzzles,
                          scale: 1, into: sums)
        contextLayer.weight.gradient.withUnsafeMutableBufferPointer { g in
            contextLayer.accumulateGradients(input: work.contextMeans.pointer, outputGradient: sums, rows: puzzles,
                                             weightGradient: g.baseAddress!, biasGradient: nil)
        }
        let dMeans = work.contextMeansGradient.pointer
        contextLayer.inputGradient(outputGradient: sums, rows: puzzles, inputGradient: dMeans)
        let scale = 1 / Float(n)
        for k in 0..<(puzzles * featureCount) { dMeans[k] *= scale }
    }

    /// The output layer on a range of rows of `input` `[B·n, u]` (the last attention block's output).
    private func outputForward(input: UnsafePointer<Float>, pieces: Range<Int>, scores: UnsafeMutablePointer<Float>) {
        let (units, n) = (configuration.hiddenUnits, configuration.pieceCount)
        var start = pieces.lowerBound
        while start < pieces.upperBound {
            let rows = min(outputLayer.rowsPerSingleThreadedCall, pieces.upperBound - start)
            outputLayer.forward(input: input + start * units, rows: rows, output: scores + start * n)
            start += rows
        }
    }

    /// g2 on a range of pieces, in row chunks small enough that OpenBLAS stays on this thread;
    /// with `hiddenOnly`, up to the hidden layer's activations.
    private func headForward(work: Workspace, pieces: Range<Int>, scores: UnsafeMutablePointer<Float>,
                             hiddenOnly: Bool = false) {
        let c = configuration
        let features = UnsafePointer(work.blocks[c.convolutionBlocks - 1].normalised.pointer)
        let (featureCount, hiddenUnits, n) = (c.featureCount, c.hiddenUnits, c.pieceCount)
        let chunk = min(hiddenLayer?.rowsPerSingleThreadedCall ?? .max, outputLayer.rowsPerSingleThreadedCall)
        var start = pieces.lowerBound
        while start < pieces.upperBound {
            let rows = min(chunk, pieces.upperBound - start)
            if let hiddenLayer {
                let hidden = work.hidden.pointer + start * hiddenUnits
                hiddenLayer.forward(input: features + start * featureCount, rows: rows, output: hidden)
                if contextLayer != nil {
                    let context = UnsafePointer(work.context.pointer)
                    for r in 0..<rows {
                        let term = context + ((start + r) / n) * hiddenUnits
                        let row = hidden + r * hiddenUnits
                        for u in 0..<hiddenUnits { row[u] += term[u] }
                    }
                }
                ReLU.rectify(hidden, count: rows * hiddenUnits)
                if !hiddenOnly { outputLayer.forward(input: hidden, rows: rows, output: scores + start * n) }
            } else {
                outputLayer.forward(input: features + start * featureCount, rows: rows, output: scores + start * n)
            }
            start += rows
        }
    }

    /// The backward of ``headForward(work:pieces:scores:)`` into `worker`'s partial gradients, then
    /// (without set context, whose term needs every piece of a puzzle first) the BatchNorm gradient
    /// sums of the last block for the same pieces.
    private func headBackward(work: Workspace, worker: Int, pieces: Range<Int>, scoresGradient: UnsafePointer<Float>,
                              batchNormSums: UnsafeMutablePointer<Double>, stage: HeadStage = .all) {
        let c = configuration
        let last = work.blocks[c.convolutionBlocks - 1]
        let features = UnsafePointer(last.normalised.pointer)
        let (featureCount, hiddenUnits, n) = (c.featureCount, c.hiddenUnits, c.pieceCount)
        let partial = work.headPartial(worker)
        if stage != .hidden { partial.update(repeating: 0, count: work.headPartialSize) }
        if stage == .output {
            // With attention: the output layer's gradients from the last block's output, and ∂L/∂Z.
            let final = UnsafePointer(work.attentionOutputs[attentions.count - 1].pointer)
            let dFinal = work.attentionGradients[attentions.count - 1].pointer
            var start = pieces.lowerBound
            while start < pieces.upperBound {
                let rows = min(outputLayer.rowsPerSingleThreadedCall, pieces.upperBound - start)
                outputLayer.accumulateGradients(input: final + start * hiddenUnits, outputGradient: scoresGradient + start * n,
                                                rows: rows, weightGradient: partial, biasGradient: nil)
                outputLayer.inputGradient(outputGradient: scoresGradient + start * n, rows: rows,
                                          inputGradient: dFinal + start * hiddenUnits)
                start += rows
            }
            return
        }
        let outputWeightSize = outputLayer.weight.value.count
        let chunk = min(hiddenLayer?.rowsPerSingleThreadedCall ?? .max, outputLayer.rowsPerSingleThreadedCall)
        var start = pieces.lowerBound
        while start < pieces.upperBound {
            let rows = min(chunk, pieces.upperBound - start)
            let dScores = scoresGradient + start * n
            let dFeatures = last.normalisedGradient.pointer + start * featureCount
            if let hiddenLayer {
                let hidden = UnsafePointer(work.hidden.pointer + start * hiddenUnits)
                let dHidden = work.hiddenGradient.pointer + start * hiddenUnits
                if stage == .all {
                    outputLayer.accumulateGradients(input: hidden, outputGradient: dScores, rows: rows,
                                                    weightGradient: partial, biasGradient: nil)
                    outputLayer.inputGradient(outputGradient: dScores, rows: rows, inputGradient: dHidden)
                }
                ReLU.mask(dHidden, output: hidden, count: rows * hiddenUnits)
                let hiddenWeight = partial + outputWeightSize
                hiddenLayer.accumulateGradients(input: features + start * featureCount, outputGradient: dHidden,
                                                rows: rows, weightGradient: hiddenWeight,
                                                biasGradient: hiddenWeight + hiddenLayer.weight.value.count)
                hiddenLayer.inputGradient(outputGradient: dHidden, rows: rows, inputGradient: dFeatures)
            } else {
                outputLayer.accumulateGradients(input: features + start * featureCount, outputGradient: dScores,
                                                rows: rows, weightGradient: partial, biasGradient: nil)
                outputLayer.inputGradient(outputGradient: dScores, rows: rows, inputGradient: dFeatures)
            }
            start += rows
        }
        if contextLayer == nil {
            normalisations[c.convolutionBlocks - 1].accumulateGradientSums(
                outputGradient: last.normalisedGradient.pointer, input: last.rectified.pointer, samples: pieces,
                planeSize: last.outputPlane, sums: batchNormSums)
        }
    }

    /// Accumulates the gradients of every parameter from `∂L/∂scores` `[B, n, n]` of the last
    /// ``forward(_:)`` (which must have run in training mode for BatchNorm's batch statistics to
    /// be differentiated; in evaluation mode the running statistics are constants).
    public func backward(_ scoresGradient: Tensor) {
        let c = configuration
        guard let input = cachedInput, let work = workspace else {
            preconditionFailure("JigsawNetwork.backward before forward")
        }
        let batch = input.shape[0], count = batch * c.pieceCount
        precondition(scoresGradient.shape == [batch, c.pieceCount, c.pieceCount],
                     "scores gradient \(scoresGradient.shape) does not match [\(batch), n, n]")
        checkParameterShapes()
        let workers = work.workers
        let lastBlock = c.convolutionBlocks - 1
        scoresGradient.withUnsafeBufferPointer { dScores in
            let dScores = dScores.baseAddress!
            let sums = normalisations[lastBlock].partials(workers: workers)
            let channels = c.hiddenChannels
            if attentions.isEmpty {
                Parallel.forEachRange(count: count, workers: workers) { worker, range in
                    headBackward(work: work, worker: worker, pieces: range, scoresGradient: dScores,
                                 batchNormSums: sums + worker * 2 * channels)
                }
            } else {
                Parallel.forEachRange(count: count, workers: workers) { worker, range in
                    headBackward(work: work, worker: worker, pieces: range, scoresGradient: dScores,
                                 batchNormSums: sums + worker * 2 * channels, stage: .output)
                }
                for index in stride(from: attentions.count - 1, through: 0, by: -1) {
                    attentions[index].backward(
                        input: UnsafePointer(work.attentionInput(index)),
                        result: UnsafePointer(work.attentionOutputs[index].pointer),
                        resultGradient: work.attentionGradients[index].pointer,
                        inputGradient: index == 0 ? work.hiddenGradient.pointer : work.attentionGradients[index - 1].pointer,
                        workers: workers)
                }
                Parallel.forEachRange(count: count, workers: workers) { worker, range in
                    headBackward(work: work, worker: worker, pieces: range, scoresGradient: dScores,
                                 batchNormSums: sums + worker * 2 * channels, stage: .hidden)
                }
            }
            if let contextLayer {
                contextBackward(contextLayer, work: work, puzzles: batch)
                let last = work.blocks[lastBlock]
                let (featureCount, n) = (c.featureCount, c.pieceCount)
                let dMeans = UnsafePointer(work.contextMeansGradient.pointer)
                Parallel.forEachRange(count: count, workers: workers) { worker, range in
                    if let contextEmbedding {
                        embedBackward(contextEmbedding, work: work, worker: worker, pieces: range)
                    } else {
                        for piece in range {
                            let row = last.normalisedGradient.pointer + piece * featureCount
                            let term = dMeans + (piece / n) * featureCount
                            for k in 0..<featureCount { row[k] += term[k] }
                        }
                    }
                    normalisations[lastBlock].accumulateGradientSums(
                        outputGradient: last.normalisedGradient.pointer, input: last.rectified.pointer, samples: range,
                        planeSize: last.outputPlane, sums: sums + worker * 2 * channels)
                }
            }
        }
        reduceHeadGradients(work: work)
        input.withUnsafeBufferPointer { input in
            for block in stride(from: lastBlock, through: 0, by: -1) {
                let geometry = work.blocks[block]
                let convolution = convolutions[block], normalisation = normalisations[block]
                let sums = normalisation.partialSums(workers: workers, zeroed: block != lastBlock)
                if block != lastBlock {
                    Parallel.forEachRange(count: count, workers: workers) { worker, range in
                        normalisation.accumulateGradientSums(outputGradient: geometry.normalisedGradient.pointer,
                                                             input: geometry.rectified.pointer, samples: range,
                                                             planeSize: geometry.outputPlane,
                                                             sums: sums + worker * 2 * geometry.channels)
                    }
                }
                for worker in 1..<max(workers, 1) {
                    for i in 0..<(2 * geometry.channels) { sums[i] += sums[worker * 2 * geometry.channels + i] }
                }
                normalisation.finishGradient(sums: sums, count: count * geometry.outputPlane)
                let source = block == 0 ? input.baseAddress! : UnsafePointer(work.blocks[block - 1].normalised.pointer)
                let inputGradient = block == 0 ? nil : work.blocks[block - 1].normalisedGradient.pointer
                let weightSize = convolution.weight.value.count
                let hasBias = convolution.bias != nil
                convolution.weight.value.withUnsafeBufferPointer { weight in
                    let weight = weight.baseAddress!
                    Parallel.forEachRange(count: count, workers: workers) { worker, range in
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
                                                         pixels: geometry.pixels,
                                                         weightGradient: scratch.weightGradient,
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

    /// The backward of ``embedForward(_:work:pieces:)`` given the mean gradients: `∂L/∂φ` masked by
    /// the ReLU, `E` and `e` gradients into `worker`'s partials, and `Eᵀ·∂L/∂φ` added to the features' gradient.
    private func embedBackward(_ embedding: Linear, work: Workspace, worker: Int, pieces: Range<Int>) {
        let c = configuration
        let (featureCount, units, n) = (c.featureCount, c.contextUnits, c.pieceCount)
        let last = work.blocks[c.convolutionBlocks - 1]
        let features = UnsafePointer(last.normalised.pointer)
        let dMeans = UnsafePointer(work.contextMeansGradient.pointer)
        let weightGradient = work.headPartial(worker) + work.embeddingPartialOffset
        var start = pieces.lowerBound
        while start < pieces.upperBound {
            let rows = min(embedding.rowsPerSingleThreadedCall, pieces.upperBound - start)
            let dEmbedded = work.embeddedGradient.pointer + start * units
            for r in 0..<rows {
                let piece = start + r
                let term = dMeans + (piece / n) * units
                let row = dEmbedded + r * units
                row.update(from: term, count: units)
                ReLU.mask(row, output: UnsafePointer(work.embedded.pointer + piece * units), count: units)
            }
            embedding.accumulateGradients(input: features + start * featureCount, outputGradient: dEmbedded, rows: rows,
                                          weightGradient: weightGradient,
                                          biasGradient: weightGradient + embedding.weight.value.count)
            embedding.inputGradient(outputGradient: dEmbedded, rows: rows,
                                    inputGradient: last.normalisedGradient.pointer + start * featureCount,
                                    accumulating: true)
            start += rows
        }
    }

    /// Adds the per-worker partial gradients of the g2 layers to their parameters, in worker order.
    private func reduceHeadGradients(work: Workspace) {
        func reduce(_ parameter: Parameter?, offset: inout Int) {
            guard let parameter else { return }
            let size = parameter.value.count
            let start = offset
            parameter.gradient.withUnsafeMutableBufferPointer { g in
                for worker in 0..<work.workers {
                    let partial = work.headPartial(worker) + start
                    for i in 0..<size { g[i] += partial[i] }
                }
            }
            offset += size
        }
        var offset = 0
        reduce(outputLayer.weight, offset: &offset)
        reduce(outputLayer.bias, offset: &offset)
        reduce(hiddenLayer?.weight, offset: &offset)
        reduce(hiddenLayer?.bias, offset: &offset)
        reduce(contextEmbedding?.weight, offset: &offset)
        reduce(contextEmbedding?.bias, offset: &offset)
    }

    /// The workspace for `pieceCount` pieces, reused when the piece count and thread count repeat.
    private func prepareWorkspace(pieceCount: Int) -> Workspace {
        // A piece costs about 10 µs forward and backward; below 8 pieces per worker, waking a
        // second thread costs more than it saves (a single puzzle is served on one thread).
        let workers = max(1, min(threadCount, pieceCount / 8))
        if let workspace, workspace.pieceCount == pieceCount, workspace.workers == workers { return workspace }
        let created = Workspace(configuration: configuration, pieceCount: pieceCount, workers: workers)
        workspace = created
        return created
    }
}

/// Which part of the head a backward pass covers: all of it, or (around the attention blocks)
/// the output layer first and the hidden layer after.
private enum HeadStage {
    case all, output, hidden
}

/// Buffers of one forward/backward pass, sized for a piece count and kept between steps.
private final class Workspace {
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
    let hidden: FloatBuffer
    let hiddenGradient: FloatBuffer
    /// Set context: per-puzzle feature means `[B, F]`, their terms `[B, u]` and the gradients.
    let contextMeans: FloatBuffer
    let context: FloatBuffer
    let contextGradient: FloatBuffer
    let contextMeansGradient: FloatBuffer
    /// Context embeddings `φ(f)` of every piece `[B·n, m]` and their gradients.
    let embedded: FloatBuffer
    let embeddedGradient: FloatBuffer
    /// Every attention block's output `[B·n, u]` and its gradient.
    let attentionOutputs: [FloatBuffer]
    let attentionGradients: [FloatBuffer]
    private let scratchBuffer: FloatBuffer
    private let columnsSize: Int, convolvedSize: Int, weightSize: Int

    init(configuration c: JigsawNetworkConfiguration, pieceCount: Int, workers: Int) {
        self.pieceCount = pieceCount
        self.workers = workers
        var blocks: [Block] = []
        var side = c.pieceSize, channels = c.channels
        var columns = 0, convolved = 0, weights = 0
        for _ in 0..<c.convolutionBlocks {
            blocks.append(Block(inputChannels: channels, channels: c.hiddenChannels, side: side, pieceCount: pieceCount))
            columns = max(columns, channels * c.kernelSize * c.kernelSize * side * side)
            convolved = max(convolved, c.hiddenChannels * side * side)
            weights = max(weights, c.hiddenChannels * channels * c.kernelSize * c.kernelSize + c.hiddenChannels)
            side /= 2
            channels = c.hiddenChannels
        }
        self.blocks = blocks
        hidden = FloatBuffer(count: pieceCount * c.hiddenUnits)
        hiddenGradient = FloatBuffer(count: pieceCount * c.hiddenUnits)
        let puzzles = c.setContext ? pieceCount / c.pieceCount : 0
        contextMeans = FloatBuffer(count: puzzles * c.contextInputs)
        context = FloatBuffer(count: puzzles * c.hiddenUnits)
        contextGradient = FloatBuffer(count: puzzles * c.hiddenUnits)
        contextMeansGradient = FloatBuffer(count: puzzles * c.contextInputs)
        embedded = FloatBuffer(count: pieceCount * c.contextUnits)
        embeddedGradient = FloatBuffer(count: pieceCount * c.contextUnits)
        attentionOutputs = (0..<c.attentionBlocks).map { _ in FloatBuffer(count: pieceCount * c.hiddenUnits) }
        attentionGradients = (0..<c.attentionBlocks).map { _ in FloatBuffer(count: pieceCount * c.hiddenUnits) }
        // Round each region to 16 floats so workers never share a cache line.
        func rounded(_ n: Int) -> Int { (n + 15) / 16 * 16 }
        columnsSize = rounded(columns)
        convolvedSize = rounded(convolved)
        weightSize = rounded(weights)
        scratchBuffer = FloatBuffer(count: workers * (2 * columnsSize + convolvedSize + weightSize))
        // Output weight, then hidden weight and bias, then the context embedding's weight and bias:
        // the order of `reduceHeadGradients`.
        let outputInputs = c.hiddenUnits > 0 ? c.hiddenUnits : c.featureCount
        embeddingPartialOffset = outputInputs * c.pieceCount
            + (c.hiddenUnits > 0 ? c.featureCount * c.hiddenUnits + c.hiddenUnits : 0)
        let headWeights = embeddingPartialOffset + c.contextUnits * (c.featureCount + 1)
        headPartialSize = rounded(headWeights)
        headPartials = FloatBuffer(count: workers * headPartialSize)
    }

    let headPartialSize: Int
    /// Where the context embedding's gradients start in a worker's head partials.
    let embeddingPartialOffset: Int
    private let headPartials: FloatBuffer

    /// The input of attention block `index`: the hidden activations or the previous block's output.
    func attentionInput(_ index: Int) -> UnsafeMutablePointer<Float> {
        index == 0 ? hidden.pointer : attentionOutputs[index - 1].pointer
    }

    func headPartial(_ worker: Int) -> UnsafeMutablePointer<Float> {
        headPartials.pointer + worker * headPartialSize
    }

    func scratch(_ worker: Int) -> Scratch {
        let base = scratchBuffer.pointer + worker * (2 * columnsSize + convolvedSize + weightSize)
        return Scratch(columns: base, columnsGradient: base + columnsSize,
                       convolved: base + 2 * columnsSize, weightGradient: base + 2 * columnsSize + convolvedSize)
    }
}
