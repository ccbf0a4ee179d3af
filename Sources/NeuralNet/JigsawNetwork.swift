import TensorKit

/// The jigsaw scoring network of the Gumbel-Sinkhorn tutorial (Mena et al. 2018, §4.2;
/// PAPERS.md §3), built as a sequence of ``JigsawStage``s: every piece goes through the same
/// stages and the last one's output is that piece's row of the score matrix.
///
///     PieceEncoder   g1: Conv2d(C → h, k×k) → MaxPool2d(2) → ReLU → BatchNorm2d(h)   (×(1 + extra))
///     SetContext     optional: the puzzle's mean features, a term of the hidden layer
///     HiddenLayer    optional: Linear(F → u) → ReLU                                  (g_2.0)
///     EdgeAttention  optional, × blocks: pieces gather what their edge neighbours computed (edges.b)
///     SetAttention   optional, × blocks: self-attention among each puzzle's pieces   (attention.b)
///     ScoreHead      Linear(F or u → K·n, no bias)                                   (g_2 or g_2.2)
///
/// With `K = scoreHeads > 1` the output layer holds one `n`-row block per head and each puzzle
/// takes its scores from the head it is given (``forward(_:heads:)``); `K = 1` is the tutorial's.
///
/// Input pieces `[B, n, C, p, p]` (already normalised), output scores `[B, n, n]`; row `i` of
/// puzzle `b` scores scrambled piece `i` over the `n` grid cells. Every stage maps each puzzle's
/// rows equivariantly, so scrambling the pieces only reorders the rows. All `B·n` pieces go
/// through the stages together, so BatchNorm's training statistics are taken over every piece of
/// the batch, as PyTorch does when all pieces are passed in one call. (The tutorial's own loop
/// calls `g_1` once per piece position, so there each position has its own batch statistics and
/// the running averages move `n` times per batch; evaluation-mode scores are the same either way.)
///
/// Tensor names are the PyTorch `state_dict` keys of the tutorial's `SinkhornConvNet`
/// (`g_1.0.weight`, `g_1.0.bias`, `g_1.3.weight`, `g_1.3.bias`, `g_1.3.running_mean`,
/// `g_1.3.running_var`, `g_2.weight`), extended the way an `nn.Sequential` would be.
///
/// Every stage keeps its buffers between calls, so a steady training loop allocates only the
/// returned score tensor. An instance is not safe to use from several threads at once.
public final class JigsawNetwork: Module {
    public let configuration: JigsawNetworkConfiguration
    /// The stages in forward order.
    public let stages: [any JigsawStage]
    /// The convolution blocks.
    public let encoder: PieceEncoder
    /// The set context, when the configuration asks for it.
    public let setContext: SetContext?
    /// The hidden layer, when there are hidden units.
    public let hidden: HiddenLayer?
    /// The self-attention blocks over each puzzle's pieces after the hidden layer.
    public let attentions: [SetAttention]
    /// The edge attention blocks after the hidden layer.
    public let edgeAttentions: [EdgeAttention]
    /// The edge compatibilities of the current batch, shared by the edge attention blocks.
    public let edgeGraph: EdgeGraph?
    /// The output layer.
    public let head: ScoreHead
    /// Workers for the per-piece work.
    public var threadCount: Int = defaultThreadCount()
    /// Training mode (batch statistics, running averages updated) or evaluation mode.
    public var isTraining: Bool = true {
        didSet { for normalisation in normalisations { normalisation.isTraining = isTraining } }
    }

    /// The row-local stages right after the encoder, which run on each worker's pieces as soon as
    /// the encoder has normalised them, while they are still in cache.
    private let fusedWithEncoder: [any RowLocalStage]
    private var cachedInput: Tensor?
    private var cachedHeads: [Int] = []
    private var cachedWorkers = 1
    private var scores = Tensor(shape: [0])

    /// A network with PyTorch's default initialisation drawn from `seed`.
    ///
    /// - Throws: ``NeuralNetError/invalidConfiguration(_:)`` when the configuration is not valid.
    public init(configuration: JigsawNetworkConfiguration = JigsawNetworkConfiguration(), seed: UInt64 = 0) throws {
        try configuration.validate()
        self.configuration = configuration
        let c = configuration
        // Layers draw their initial weights in this order (encoder, hidden, output, context,
        // attention, edges), so a seed gives the same network whatever stages follow.
        var generator = SeededGenerator(seed: seed)
        encoder = PieceEncoder(channels: c.channels, pieceSize: c.pieceSize, hiddenChannels: c.hiddenChannels,
                               kernelSize: c.kernelSize, blocks: c.convolutionBlocks, generator: &generator)
        var hiddenLinear: Linear?
        if c.hiddenUnits > 0 {
            hiddenLinear = Linear(name: "g_2.0", inputFeatures: c.featureCount, outputFeatures: c.hiddenUnits,
                                  generator: &generator)
        }
        head = ScoreHead(name: c.hiddenUnits > 0 ? "g_2.2" : "g_2",
                         inputFeatures: c.hiddenUnits > 0 ? c.hiddenUnits : c.featureCount,
                         positions: c.pieceCount * c.scoreHeads, generator: &generator)
        let context = c.setContext
            ? SetContext(inputFeatures: c.featureCount, hiddenUnits: c.hiddenUnits, contextUnits: c.contextUnits,
                         generator: &generator)
            : nil
        setContext = context
        hidden = hiddenLinear.map { HiddenLayer(linear: $0, context: context) }
        attentions = (0..<c.attentionBlocks).map { block in
            SetAttention(name: "attention.\(block)", features: c.hiddenUnits, heads: c.attentionHeads,
                         headUnits: c.attentionHeadUnits, generator: &generator)
        }
        let graph = c.edgeBlocks > 0
            ? EdgeGraph(measure: c.edgeMeasureValue ?? .mahalanobisGradient, sharpness: c.edgeSharpness)
            : nil
        edgeGraph = graph
        edgeAttentions = graph.map { graph in
            (0..<c.edgeBlocks).map { block in
                EdgeAttention(name: "edges.\(block)", features: c.hiddenUnits, graph: graph, generator: &generator)
            }
        } ?? []
        var stages: [any JigsawStage] = [encoder]
        if let setContext { stages.append(setContext) }
        if let hidden { stages.append(hidden) }
        stages += edgeAttentions as [any JigsawStage]
        stages += attentions as [any JigsawStage]
        stages.append(head)
        self.stages = stages
        var fused: [any RowLocalStage] = []
        while 1 + fused.count < stages.count, let next = stages[1 + fused.count] as? any RowLocalStage { fused.append(next) }
        fusedWithEncoder = fused
    }

    /// Builds the network described by a weights file's metadata and loads its tensors.
    ///
    /// - Throws: the errors of ``JigsawNetworkConfiguration/init(metadata:)`` and ``Module/load(_:)``.
    public convenience init(metadata: [String: String], tensors: [String: Tensor]) throws {
        try self.init(configuration: JigsawNetworkConfiguration(metadata: metadata))
        try load(tensors)
    }

    public var parameters: [Parameter] { stages.flatMap(\.parameters) }
    public var buffers: [Buffer] { stages.flatMap(\.buffers) }

    /// One convolution per block (`g_1.0`, `g_1.4`, …).
    public var convolutions: [Conv2d] { encoder.convolutions }
    /// One BatchNorm per block (`g_1.3`, `g_1.7`, …).
    public var normalisations: [BatchNorm2d] { encoder.normalisations }
    /// The optional hidden Linear layer (`g_2.0`).
    public var hiddenLayer: Linear? { hidden?.linear }
    /// The output Linear layer without bias (`g_2` or `g_2.2`).
    public var outputLayer: Linear { head.linear }
    /// The set-context weight (`context.weight`, no bias) when the configuration asks for it.
    public var contextLayer: Linear? { setContext?.contextLayer }
    /// The per-piece context embedding `φ` (`context.embed`) when there are context units.
    public var contextEmbedding: Linear? { setContext?.embedding }

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
    ///
    /// - Parameter heads: with several score heads, the head that scores each puzzle (`B` values in
    ///   `0..<scoreHeads`); `nil` takes head 0 for every puzzle.
    public func forward(_ pieces: Tensor, heads: [Int]? = nil) -> Tensor {
        let c = configuration
        precondition(pieces.rank == 5 && Array(pieces.shape.dropFirst()) == Array(inputShape(batch: 0).dropFirst()),
                     "JigsawNetwork expects \(inputShape(batch: pieces.shape.first ?? 0)), got \(pieces.shape)")
        let batch = pieces.shape[0], count = batch * c.pieceCount
        let heads = heads ?? [Int](repeating: 0, count: batch)
        precondition(heads.count == batch && heads.allSatisfy { (0..<c.scoreHeads).contains($0) },
                     "JigsawNetwork needs one head in 0..<\(c.scoreHeads) per puzzle")
        cachedHeads = heads
        for stage in stages { stage.checkParameterShapes() }
        // A piece costs about 10 µs forward and backward; below 8 pieces per worker, waking a
        // second thread costs more than it saves (a single puzzle is served on one thread).
        cachedWorkers = max(1, min(threadCount, count / 8))
        cachedInput = pieces
        let outputShape = [batch, c.pieceCount, c.pieceCount]
        if scores.shape != outputShape { scores = Tensor(shape: outputShape) }
        pieces.withUnsafeBufferPointer { input in
            let pass = StagePass(rows: count, piecesPerPuzzle: c.pieceCount, workers: cachedWorkers,
                                 isTraining: isTraining, input: input.baseAddress!)
            for stage in stages { stage.prepare(pass) }
            edgeGraph?.compute(pieces: input.baseAddress!, rows: count, piecesPerPuzzle: c.pieceCount,
                               channels: c.channels, side: c.pieceSize, workers: cachedWorkers)
            let (encoderOutput, chain) = (UnsafePointer(encoder.activations), fusedWithEncoder)
            encoder.forward(pass) { range in
                var input = encoderOutput
                for stage in chain {
                    stage.forward(rows: range, input: input, pass: pass)
                    input = UnsafePointer(stage.activations)
                }
            }
            pass.input = UnsafePointer(chain.last?.activations ?? encoder.activations)
            for stage in stages.dropFirst(1 + chain.count) {
                stage.forward(pass)
                if !stage.passesInputThrough { pass.input = UnsafePointer(stage.activations) }
            }
        }
        scores.withUnsafeMutableBufferPointer { output in
            if c.scoreHeads == 1 {
                output.baseAddress!.update(from: head.activations, count: output.count)
            } else {
                let n = c.pieceCount, width = n * c.scoreHeads
                for b in 0..<batch {
                    for i in 0..<n {
                        let row = b * n + i
                        (output.baseAddress! + row * n).update(from: head.activations + row * width + heads[b] * n, count: n)
                    }
                }
            }
        }
        return scores
    }

    /// Accumulates the gradients of every parameter from `∂L/∂scores` `[B, n, n]` of the last
    /// ``forward(_:)`` (which must have run in training mode for BatchNorm's batch statistics to
    /// be differentiated; in evaluation mode the running statistics are constants).
    public func backward(_ scoresGradient: Tensor) {
        let c = configuration
        guard let input = cachedInput else { preconditionFailure("JigsawNetwork.backward before forward") }
        let batch = input.shape[0], count = batch * c.pieceCount
        precondition(scoresGradient.shape == [batch, c.pieceCount, c.pieceCount],
                     "scores gradient \(scoresGradient.shape) does not match [\(batch), n, n]")
        for stage in stages { stage.checkParameterShapes() }
        scoresGradient.withUnsafeBufferPointer { g in
            if c.scoreHeads == 1 {
                head.activationGradient.update(from: g.baseAddress!, count: g.count)
            } else {
                // Only the rows of each puzzle's own head received a gradient.
                let n = c.pieceCount, width = n * c.scoreHeads
                head.activationGradient.update(repeating: 0, count: count * width)
                for b in 0..<batch {
                    for i in 0..<n {
                        let row = b * n + i
                        (head.activationGradient + row * width + cachedHeads[b] * n).update(from: g.baseAddress! + row * n, count: n)
                    }
                }
            }
        }
        input.withUnsafeBufferPointer { input in
            // Each stage's input and the buffer that receives its gradient: the output of the last
            // stage before it that does not pass its input through.
            var inputs: [UnsafePointer<Float>] = []
            var gradients: [UnsafeMutablePointer<Float>?] = []
            var current = input.baseAddress!
            var currentGradient: UnsafeMutablePointer<Float>? = nil
            for stage in stages {
                inputs.append(current)
                gradients.append(currentGradient)
                if !stage.passesInputThrough {
                    current = UnsafePointer(stage.activations)
                    currentGradient = stage.activationGradient
                }
            }
            let pass = StagePass(rows: count, piecesPerPuzzle: c.pieceCount, workers: cachedWorkers,
                                 isTraining: isTraining, input: input.baseAddress!)
            for index in stages.indices.reversed() {
                pass.input = inputs[index]
                pass.inputGradient = gradients[index]
                stages[index].backward(pass)
            }
        }
    }
}
