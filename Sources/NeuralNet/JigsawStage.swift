import TensorKit

/// One stage of the ``JigsawNetwork``: it maps every piece's row of features `[rows, in]` to a new
/// row `[rows, out]`, with its own forward and backward over buffers it keeps between calls.
///
/// The network is a sequence of stages built from its configuration — piece encoder, optional set
/// context, hidden layer, attention blocks, score head — and calls them in order forward and in
/// reverse order backward. A new kind of network is a new stage, not a branch inside another one.
/// Rows are pieces, `n` consecutive rows per puzzle; a stage may mix rows of one puzzle (set
/// context, attention) but never rows of different puzzles, so the network stays
/// permutation-equivariant.
///
/// Gradient buffers: stage `k` owns the gradient of its output and, in ``backward(_:)``, writes the
/// gradient of its input into the buffer of stage `k − 1` (overwriting it), except a stage that
/// ``passesInputThrough``: its output is its input and its backward adds into the same buffer.
public protocol JigsawStage: AnyObject {
    /// Every trainable tensor, in a fixed order.
    var parameters: [Parameter] { get }
    /// Every saved but untrained tensor (running statistics).
    var buffers: [Buffer] { get }
    /// Features per row of the output.
    var outputFeatures: Int { get }
    /// Whether the output is the input itself (the stage only contributes elsewhere).
    var passesInputThrough: Bool { get }
    /// Sizes the stage's buffers for `pass` (reused while the geometry repeats).
    func prepare(_ pass: StagePass)
    /// The output rows `[rows, outputFeatures]` after ``forward(_:)`` (unused when passing through).
    var activations: UnsafeMutablePointer<Float> { get }
    /// The gradient of the output `[rows, outputFeatures]`, filled by the next stage.
    var activationGradient: UnsafeMutablePointer<Float> { get }
    /// Computes the output from `pass.input`.
    func forward(_ pass: StagePass)
    /// Accumulates parameter gradients from ``activationGradient`` (which it may overwrite) and, when
    /// `pass.inputGradient` is given, writes the gradient of the input there.
    func backward(_ pass: StagePass)
    /// Stops if a parameter was given another shape from outside (kernels read raw pointers).
    func checkParameterShapes()
}

/// A stage whose forward treats every row on its own (given what earlier stages computed for the
/// whole batch), so the network can run it on a worker's rows right after the stage before it,
/// while those rows are still in that core's cache.
public protocol RowLocalStage: JigsawStage {
    /// The forward on the rows of `range`, reading `input` (the previous stage's activations).
    func forward(rows range: Range<Int>, input: UnsafePointer<Float>, pass: StagePass)
}

extension RowLocalStage {
    public func forward(_ pass: StagePass) {
        let input = pass.input
        Parallel.forEachRowRange(count: pass.rows, workers: pass.workers) { _, range in
            forward(rows: range, input: input, pass: pass)
        }
    }
}

extension JigsawStage {
    public var buffers: [Buffer] { [] }
    public var passesInputThrough: Bool { false }
}

/// The geometry and the pointers of one stage call: shared by all stages of one pass.
public final class StagePass {
    /// Rows (pieces) in the batch.
    public let rows: Int
    /// Rows per puzzle, `n = grid²`.
    public let piecesPerPuzzle: Int
    /// Worker threads for per-row work.
    public let workers: Int
    /// Training mode (batch statistics) or evaluation mode.
    public let isTraining: Bool
    /// The current stage's input rows.
    public internal(set) var input: UnsafePointer<Float>
    /// Where the current stage writes the gradient of its input, or `nil` for the first stage.
    public internal(set) var inputGradient: UnsafeMutablePointer<Float>?

    /// Puzzles in the batch.
    public var puzzles: Int { rows / piecesPerPuzzle }

    init(rows: Int, piecesPerPuzzle: Int, workers: Int, isTraining: Bool, input: UnsafePointer<Float>) {
        precondition(piecesPerPuzzle > 0 && rows % piecesPerPuzzle == 0, "\(rows) rows are not whole puzzles")
        self.rows = rows
        self.piecesPerPuzzle = piecesPerPuzzle
        self.workers = workers
        self.isTraining = isTraining
        self.input = input
    }
}

/// `output[b] = scale · Σᵢ rows[b·n + i]` for rows of `width` floats, `n` rows per puzzle.
func sumPerPuzzle(_ rows: UnsafePointer<Float>, width: Int, piecesPerPuzzle n: Int, puzzles: Int,
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
