import Foundation

/// A fixed set of network instances shared by request handlers.
///
/// The networks keep workspaces between calls and are not safe to use from two threads at once,
/// so a request borrows one instance for the duration of its forward pass. With one instance the
/// pool is a lock; with `k` instances up to `k` requests run their forward passes in parallel and
/// the others wait.
final class NetworkPool<Network: AnyObject>: @unchecked Sendable {
    // Thread safety: `idle` is touched only with `condition` locked.
    private let condition = NSCondition()
    private var idle: [Network]
    /// The number of instances.
    let size: Int

    /// Creates a pool over already built instances.
    init(_ instances: [Network]) {
        precondition(!instances.isEmpty, "a network pool needs at least one instance")
        idle = instances
        size = instances.count
    }

    /// Runs `body` with an instance no other thread is using, waiting for one if all are busy.
    func withNetwork<Result>(_ body: (Network) throws -> Result) rethrows -> Result {
        condition.lock()
        while idle.isEmpty { condition.wait() }
        let network = idle.removeLast()
        condition.unlock()
        defer {
            condition.lock()
            idle.append(network)
            condition.signal()
            condition.unlock()
        }
        return try body(network)
    }
}
