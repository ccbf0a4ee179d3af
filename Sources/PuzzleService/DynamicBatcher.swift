import Dispatch
import Foundation
import TensorKit

/// How concurrent requests for one model are gathered into forward passes.
public struct BatchPolicy: Sendable, Equatable {
    /// Most requests in one forward pass.
    public var maximumSize: Int
    /// How long a forward pass that could take more requests waits for them once it has more than
    /// one. A lone request never waits: the pass for it starts at once.
    public var maximumWait: Duration

    /// - Parameters:
    ///   - maximumSize: most requests per forward pass (1 turns batching off).
    ///   - maximumWait: the longest a pass with at least two requests waits to fill up.
    public init(maximumSize: Int = 32, maximumWait: Duration = .zero) {
        precondition(maximumSize >= 1, "a batch holds at least one request")
        precondition(maximumWait >= .zero, "the batch wait cannot be negative")
        self.maximumSize = maximumSize
        self.maximumWait = maximumWait
    }
}

/// What one request's forward pass cost: the time it waited for a network and the size of the
/// batch it ran in.
public struct BatchTicket: Sendable {
    /// From entering the queue to its batch starting.
    public var queued: Duration
    /// The forward pass of the whole batch.
    public var computed: Duration
    /// Requests in that batch.
    public var batchSize: Int
}

/// Counters of a batcher, for `/metrics`.
public struct BatcherStatistics: Sendable, Equatable {
    /// Forward passes run.
    public var batches = 0
    /// Requests served by them.
    public var requests = 0
    /// Forward passes by batch size: `sizes[k]` counts passes of `k + 1` requests.
    public var sizes: [Int]
}

/// Dynamic batching over a fixed set of network instances, as TorchServe and Triton do it:
/// requests for the same model that arrive while the networks are busy are gathered into one
/// forward pass of up to ``BatchPolicy/maximumSize`` inputs.
///
/// Design (leader/follower, no thread of its own): a request appends its input to a FIFO queue.
/// Whenever an instance is idle, one waiting caller becomes the leader: it takes the oldest
/// queued inputs (up to the maximum), concatenates them along the batch dimension, runs the
/// instance, splits the output and wakes the callers whose inputs it carried. A request that
/// arrives at an idle batcher is therefore run at once, alone; under load each pass takes every
/// input that queued while the previous ones ran. With ``BatchPolicy/maximumWait`` above zero, a
/// leader that has gathered at least two inputs but fewer than the maximum waits up to that long
/// for more.
///
/// The networks keep workspaces between calls and are used by one thread at a time.
public final class DynamicBatcher<Network: AnyObject>: @unchecked Sendable {
    // Thread safety: every stored property below `condition` is touched only with it locked;
    // a job's `output` is written by its leader before `done` is set, and read by its owner after.
    private final class Job {
        let input: Tensor
        let enqueued: UInt64
        var output: Tensor?
        var ticket: BatchTicket?
        var done = false
        init(input: Tensor, enqueued: UInt64) {
            self.input = input
            self.enqueued = enqueued
        }
    }

    private let condition = NSCondition()
    private var idle: [Network]
    private var queue: [Job] = []
    private var statistics: BatcherStatistics
    private let forward: (Network, Tensor) -> Tensor
    /// The policy in force.
    public let policy: BatchPolicy
    /// The number of network instances (forward passes that can run at once).
    public let instanceCount: Int

    /// - Parameters:
    ///   - instances: already built networks, used one thread at a time each.
    ///   - policy: batch size and wait.
    ///   - forward: runs a network on a batch `[B, …]` and returns `[B, …]`, row `b` of the
    ///     output belonging to row `b` of the input.
    public init(_ instances: [Network], policy: BatchPolicy, forward: @escaping (Network, Tensor) -> Tensor) {
        precondition(!instances.isEmpty, "a batcher needs at least one network instance")
        idle = instances
        instanceCount = instances.count
        self.policy = policy
        self.forward = forward
        statistics = BatcherStatistics(sizes: [Int](repeating: 0, count: policy.maximumSize))
    }

    /// The counters so far.
    public var currentStatistics: BatcherStatistics { condition.withLock { statistics } }

    /// Requests waiting for a forward pass to take them.
    public var queuedCount: Int { condition.withLock { queue.count } }

    /// Runs one input `[1, …]` through a network, in a batch with whatever other inputs of the
    /// same shape are waiting, and returns its own output `[1, …]`.
    public func run(_ input: Tensor) -> (output: Tensor, ticket: BatchTicket) {
        precondition(input.rank >= 1 && input.shape[0] == 1, "a batched request holds one input, got \(input.shape)")
        let job = Job(input: input, enqueued: Self.now())
        condition.lock()
        defer { condition.unlock() }
        queue.append(job)
        condition.broadcast()
        while !job.done {
            if !idle.isEmpty, !queue.isEmpty {
                lead()
            } else {
                condition.wait()
            }
        }
        // Both are set together by the leader before `done`.
        return (job.output ?? Tensor(shape: [0]), job.ticket ?? BatchTicket(queued: .zero, computed: .zero, batchSize: 0))
    }

    /// Takes a network and a batch of queued jobs, runs them with the lock released, and hands out
    /// the outputs. Called and returns with `condition` locked.
    private func lead() {
        let network = idle.removeLast()
        if policy.maximumWait > .zero, queue.count >= 2, queue.count < policy.maximumSize {
            let deadline = Date(timeIntervalSinceNow: Double(policy.maximumWait.components.seconds)
                + Double(policy.maximumWait.components.attoseconds) * 1e-18)
            while queue.count < policy.maximumSize, condition.wait(until: deadline) {}
        }
        // A batch holds inputs of one shape; a job of another shape waits for the next pass.
        let shape = queue[0].input.shape
        var batch: [Job] = []
        var index = 0
        while index < queue.count, batch.count < policy.maximumSize {
            if queue[index].input.shape == shape {
                batch.append(queue.remove(at: index))
            } else {
                index += 1
            }
        }
        condition.unlock()
        let started = Self.now()
        let outputs = Self.split(forward(network, Self.concatenate(batch.map(\.input))), count: batch.count)
        let finished = Self.now()
        condition.lock()
        for (job, output) in zip(batch, outputs) {
            job.output = output
            job.ticket = BatchTicket(queued: .nanoseconds(Int64(started - job.enqueued)),
                                     computed: .nanoseconds(Int64(finished - started)), batchSize: batch.count)
            job.done = true
        }
        statistics.batches += 1
        statistics.requests += batch.count
        statistics.sizes[batch.count - 1] += 1
        idle.append(network)
        condition.broadcast()
    }

    private static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// `[1, …]` inputs of one shape stacked into `[B, …]`.
    public static func concatenate(_ inputs: [Tensor]) -> Tensor {
        guard inputs.count > 1 else { return inputs[0] }
        var shape = inputs[0].shape
        shape[0] = inputs.count
        var storage: [Float] = []
        storage.reserveCapacity(inputs.count * inputs[0].count)
        for input in inputs { storage.append(contentsOf: input.storage) }
        return Tensor(shape: shape, storage: storage)
    }

    /// `[B, …]` cut into `B` tensors `[1, …]`.
    public static func split(_ output: Tensor, count: Int) -> [Tensor] {
        precondition(output.rank >= 1 && output.shape[0] == count, "a batch of \(count) gave an output \(output.shape)")
        guard count > 1 else { return [output] }
        var shape = output.shape
        shape[0] = 1
        let stride = output.count / count
        return (0..<count).map { b in
            Tensor(shape: shape, storage: Array(output.storage[(b * stride)..<((b + 1) * stride)]))
        }
    }
}
