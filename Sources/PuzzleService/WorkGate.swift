import Foundation

/// The admission queue of heavy work (decoding, resizing, encoding images, soft matrices): at
/// most `slots` requests hold a slot at once; up to `maximumWaiting` more wait in FIFO order, each
/// at most `maximumWait`. A request beyond the queue, or one whose wait runs out, is shed with
/// 503 `overloaded` and `Retry-After` instead of piling up, so a burst never grows memory or
/// latency without bound. Cheap routes (health, readiness, metrics, static files) never pass here.
public final class WorkGate: @unchecked Sendable {
    // Thread safety: `free`, `waiting`, `nextTicket` and `serving` are touched only with
    // `condition` locked.
    private let condition = NSCondition()
    private var free: Int
    private var waiting = 0
    private var nextTicket = 0
    private var serving = 0
    /// Requests that may work at once.
    public let slots: Int
    /// Requests that may wait for a slot.
    public let maximumWaiting: Int
    /// The longest a request waits for a slot.
    public let maximumWait: Duration

    public init(slots: Int, maximumWaiting: Int = 256, maximumWait: Duration = .seconds(30)) {
        precondition(slots >= 1 && maximumWaiting >= 0, "a work gate has at least one slot")
        self.slots = slots
        free = slots
        self.maximumWaiting = maximumWaiting
        self.maximumWait = maximumWait
    }

    /// Requests holding a slot and requests waiting for one.
    public var occupancy: (working: Int, waiting: Int) { condition.withLock { (slots - free, waiting) } }

    /// Requests refused so far (queue full or wait expired).
    public var shedCount: Int { condition.withLock { shed } }
    private var shed = 0

    /// Requests dropped when their turn came because their client had gone.
    public var abandonedCount: Int { condition.withLock { abandoned } }
    private var abandoned = 0

    func countAbandoned() { condition.withLock { abandoned += 1 } }

    /// Runs `body` holding a slot, after the requests that came first.
    /// - Throws: `overloaded` when the queue is full or the wait exceeds ``maximumWait``; what
    ///   `body` throws.
    public func run<Result>(_ body: () throws -> Result) throws -> Result {
        try acquire(bounded: true)
        defer { release() }
        return try body()
    }

    /// Gives the caller's slot to another request while `body` runs (a wait that costs no CPU of
    /// its own, such as a forward pass queued in a batcher) and takes one back after, queueing
    /// without bound or deadline: the request's work is half done and is not thrown away.
    /// Only for a caller inside ``run(_:)``.
    public func setAside<Result>(_ body: () throws -> Result) rethrows -> Result {
        release()
        defer { try? acquire(bounded: false) }
        return try body()
    }

    private func acquire(bounded: Bool) throws(ServiceError) {
        condition.lock()
        defer { condition.unlock() }
        if free > 0, waiting == 0 {
            free -= 1
            return
        }
        if !bounded {
            // A request coming back from a wait outside the gate goes before those not yet started.
            while free == 0 { condition.wait() }
            free -= 1
            return
        }
        guard waiting < maximumWaiting else {
            shed += 1
            throw .overloaded(reason: "the server is at capacity (\(slots) requests working, \(waiting) waiting)", retryAfter: 1)
        }
        let ticket = nextTicket
        nextTicket += 1
        waiting += 1
        defer { waiting -= 1 }
        let deadline = Date(timeIntervalSinceNow: Double(maximumWait.components.seconds)
            + Double(maximumWait.components.attoseconds) * 1e-18)
        while !(free > 0 && serving == ticket) {
            if !condition.wait(until: deadline), !(free > 0 && serving == ticket) {
                // Give up this turn: the next ticket is served as if this one had been.
                skipped.insert(ticket)
                shed += 1
                advance()
                condition.broadcast()
                throw .overloaded(reason: "the request waited \(maximumWait) for the server's work queue", retryAfter: 2)
            }
        }
        free -= 1
        serving += 1
        advance()
        condition.broadcast()
    }

    /// Tickets that gave up before their turn.
    private var skipped: Set<Int> = []

    /// Moves `serving` past tickets that gave up.
    private func advance() {
        while skipped.remove(serving) != nil { serving += 1 }
    }

    private func release() {
        condition.lock()
        free += 1
        condition.broadcast()
        condition.unlock()
    }
}
