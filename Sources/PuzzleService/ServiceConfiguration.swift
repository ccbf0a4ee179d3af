import Jigsaw

/// The service's own limits and defaults (the HTTP limits live in `HTTPServerConfiguration`).
public struct ServiceConfiguration: Sendable {
    /// Most `width × height × channels` of an uploaded image (whole image or one piece) as decoded
    /// (a large JPEG at its DCT scale); a larger size is refused with 413 on the header, before
    /// any pixel is allocated.
    public var maximumImageSamples: Int
    /// Most samples over all pieces of one piece list.
    public var maximumPieceListSamples: Int
    /// The most Sinkhorn iterations a request may ask for.
    public var maximumIterations: Int
    /// Sinkhorn iterations when a request gives none.
    public var defaultIterations: Int
    /// The temperature of the soft matrix that per-piece confidences are read from when a
    /// solve request gives no `tau`.
    public var confidenceTemperature: Float
    /// The largest grid `POST /v1/scramble` cuts.
    public var maximumScrambleGrid: Int
    /// The longest side of the images kept with a stored puzzle (reconstructions are drawn at
    /// this size; the network always sees its own piece size).
    public var displaySize: Int
    /// Most puzzles kept.
    public var storeCapacity: Int
    /// Most bytes of puzzles kept.
    public var storeByteBudget: Int
    /// How long a puzzle is kept after it was solved.
    public var storeTimeToLive: Duration
    /// The seed of the generator that draws puzzle ids and default scramble seeds.
    public var seed: UInt64
    /// Most requests decoding, scoring or encoding images at once; the others wait. Bounds the
    /// memory of concurrent large uploads (each may decode up to `maximumImageSamples`).
    public var concurrentWork: Int
    /// Most requests waiting for one of the `concurrentWork` slots; more are shed with 503.
    public var workQueueLength: Int
    /// The longest a request waits for a slot before it is shed with 503.
    public var workQueueTimeout: Duration

    public init(maximumImageSamples: Int = 16 << 20, maximumPieceListSamples: Int = 16 << 20,
                maximumIterations: Int = 1000, defaultIterations: Int = 20, confidenceTemperature: Float = 1,
                maximumScrambleGrid: Int = 16, displaySize: Int = 512, storeCapacity: Int = 1024,
                storeByteBudget: Int = 256 << 20, storeTimeToLive: Duration = .seconds(3600), seed: UInt64 = 0,
                concurrentWork: Int = 4, workQueueLength: Int = 256, workQueueTimeout: Duration = .seconds(30)) {
        precondition(maximumImageSamples > 0 && maximumPieceListSamples > 0, "sample limits must be positive")
        precondition(maximumIterations >= 1 && (1...maximumIterations).contains(defaultIterations), "iteration bounds")
        precondition(confidenceTemperature.isFinite && confidenceTemperature > 0, "confidence temperature must be positive")
        precondition(maximumScrambleGrid >= 1 && displaySize >= 1, "scramble grid and display size must be positive")
        precondition(storeCapacity >= 1 && storeByteBudget >= 1, "store bounds must be positive")
        precondition(concurrentWork >= 1, "at least one request must be able to work")
        precondition(workQueueLength >= 0 && workQueueTimeout > .zero, "work queue bounds")
        self.maximumImageSamples = maximumImageSamples
        self.maximumPieceListSamples = maximumPieceListSamples
        self.maximumIterations = maximumIterations
        self.defaultIterations = defaultIterations
        self.confidenceTemperature = confidenceTemperature
        self.maximumScrambleGrid = maximumScrambleGrid
        self.displaySize = displaySize
        self.storeCapacity = storeCapacity
        self.storeByteBudget = storeByteBudget
        self.storeTimeToLive = storeTimeToLive
        self.seed = seed
        self.concurrentWork = concurrentWork
        self.workQueueLength = workQueueLength
        self.workQueueTimeout = workQueueTimeout
    }
}
