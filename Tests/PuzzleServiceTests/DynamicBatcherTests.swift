import Dispatch
import Foundation
import Jigsaw
import NeuralNet
import PuzzleService
import TensorKit
import Testing

/// A stand-in network whose forward passes can be held at a gate, so that tests decide exactly
/// which requests are queued when a pass starts. Output row `b` is input row `b` times 2, so every
/// caller can check it got its own answer.
private final class GatedDoubler: @unchecked Sendable {
    // Thread safety: `sizes` and `holding` are touched only with `lock` held.
    private let lock = NSLock()
    private var sizes: [Int] = []
    private var holding = true
    private let gate = DispatchSemaphore(value: 0)
    /// Signalled when a forward pass has started.
    let started = DispatchSemaphore(value: 0)

    /// The batch size of every forward pass so far, in order.
    var batchSizes: [Int] { lock.withLock { sizes } }

    /// Lets the held pass go on and every later pass run without holding.
    func release() {
        lock.withLock { holding = false }
        gate.signal()
    }

    func forward(_ input: Tensor) -> Tensor {
        let holds = lock.withLock { sizes.append(input.shape[0]); return holding }
        started.signal()
        if holds { gate.wait() }
        return Tensor(shape: input.shape, storage: input.storage.map { 2 * $0 })
    }
}

@Suite("Dynamic batching")
struct DynamicBatcherTests {
    /// Starts `count` callers of `batcher.run`, each with input `[1, 3]` filled with its index, and
    /// returns their outputs by index once all have finished.
    private static func runConcurrently(_ batcher: DynamicBatcher<GatedDoubler>, count: Int, first: Int = 0,
                                        group: DispatchGroup, results: Locked<[Int: (Tensor, BatchTicket)]>) {
        for index in first..<(first + count) {
            group.enter()
            Thread.detachNewThread {
                let result = batcher.run(Tensor(shape: [1, 3], repeating: Float(index)))
                results.update { $0[index] = result }
                group.leave()
            }
        }
    }

    /// Waits until `count` requests are queued in `batcher` (the callers run on their own threads).
    private static func waitUntilQueued<Network>(_ batcher: DynamicBatcher<Network>, _ count: Int) {
        while batcher.queuedCount < count { Thread.sleep(forTimeInterval: 0.001) }
    }

    @Test("requests that arrive while the network is busy share the next forward pass",
          .timeLimit(.minutes(1)))
    func requestsQueuedDuringAPassShareTheNext() throws {
        let network = GatedDoubler()
        let batcher = DynamicBatcher([network], policy: BatchPolicy(maximumSize: 8)) { $0.forward($1) }
        let group = DispatchGroup(), results = Locked<[Int: (Tensor, BatchTicket)]>([:])
        Self.runConcurrently(batcher, count: 1, group: group, results: results)
        network.started.wait()  // the first pass holds the only network
        Self.runConcurrently(batcher, count: 5, first: 1, group: group, results: results)
        Self.waitUntilQueued(batcher, 5)
        network.release()
        group.wait()
        let outputs = results.value
        #expect(outputs.count == 6)
        for (index, (output, ticket)) in outputs {
            #expect(output.shape == [1, 3])
            #expect(output.storage == [Float](repeating: 2 * Float(index), count: 3), "caller \(index) got another's answer")
            #expect(ticket.batchSize == (index == 0 ? 1 : 5))
        }
        #expect(network.batchSizes == [1, 5])
        let statistics = batcher.currentStatistics
        #expect(statistics.batches == 2 && statistics.requests == 6)
        #expect(statistics.sizes[0] == 1 && statistics.sizes[4] == 1)
    }

    @Test("a pass takes at most the maximum batch size; the rest wait for the next", .timeLimit(.minutes(1)))
    func batchesAreBounded() throws {
        let network = GatedDoubler()
        let batcher = DynamicBatcher([network], policy: BatchPolicy(maximumSize: 3)) { $0.forward($1) }
        let group = DispatchGroup(), results = Locked<[Int: (Tensor, BatchTicket)]>([:])
        Self.runConcurrently(batcher, count: 1, group: group, results: results)
        network.started.wait()
        Self.runConcurrently(batcher, count: 7, first: 1, group: group, results: results)
        Self.waitUntilQueued(batcher, 7)
        network.release()
        group.wait()
        #expect(results.value.count == 8)
        #expect(network.batchSizes == [1, 3, 3, 1])
        for (index, (output, _)) in results.value {
            #expect(output.storage == [Float](repeating: 2 * Float(index), count: 3))
        }
    }

    @Test("a lone request runs at once even with a long batch wait", .timeLimit(.minutes(1)))
    func loneRequestIsNotDelayed() {
        let network = GatedDoubler()
        network.release()
        // An hour of wait would time the test out if a lone request waited for company.
        let batcher = DynamicBatcher([network], policy: BatchPolicy(maximumSize: 16, maximumWait: .seconds(3600))) {
            $0.forward($1)
        }
        for value in 0..<5 {
            let (output, ticket) = batcher.run(Tensor(shape: [1, 2], repeating: Float(value)))
            #expect(output.storage == [2 * Float(value), 2 * Float(value)])
            #expect(ticket.batchSize == 1)
        }
        #expect(network.batchSizes == [1, 1, 1, 1, 1])
    }

    @Test("with a batch wait, a pass that holds two requests waits until the batch is full", .timeLimit(.minutes(1)))
    func batchWaitFillsTheBatch() {
        let network = GatedDoubler()
        let batcher = DynamicBatcher([network], policy: BatchPolicy(maximumSize: 4, maximumWait: .seconds(3600))) {
            $0.forward($1)
        }
        let group = DispatchGroup(), results = Locked<[Int: (Tensor, BatchTicket)]>([:])
        Self.runConcurrently(batcher, count: 1, group: group, results: results)
        network.started.wait()
        // Two queue behind the first pass; its successor waits (an hour at most) for two more.
        Self.runConcurrently(batcher, count: 2, first: 1, group: group, results: results)
        Self.waitUntilQueued(batcher, 2)
        network.release()
        Self.runConcurrently(batcher, count: 2, first: 3, group: group, results: results)
        group.wait()
        #expect(network.batchSizes == [1, 4])
        for (index, (output, _)) in results.value {
            #expect(output.storage == [Float](repeating: 2 * Float(index), count: 3))
        }
    }

    @Test("inputs of different shapes never share a pass")
    func shapesAreNotMixed() {
        let network = GatedDoubler()
        let batcher = DynamicBatcher([network], policy: BatchPolicy(maximumSize: 8)) { $0.forward($1) }
        let group = DispatchGroup(), results = Locked<[Int: (Tensor, BatchTicket)]>([:])
        Self.runConcurrently(batcher, count: 1, group: group, results: results)
        network.started.wait()
        for (index, width) in [(10, 3), (11, 5), (12, 3), (13, 5)] {
            group.enter()
            Thread.detachNewThread {
                let result = batcher.run(Tensor(shape: [1, width], repeating: Float(index)))
                results.update { $0[index] = result }
                group.leave()
            }
        }
        Self.waitUntilQueued(batcher, 4)
        network.release()
        group.wait()
        for (index, (output, _)) in results.value {
            #expect(output.storage.allSatisfy { $0 == 2 * Float(index) })
            #expect(output.shape[1] == (index == 0 || index == 10 || index == 12 ? 3 : 5))
        }
        #expect(network.batchSizes == [1, 2, 2])
    }

    @Test("concatenate and split are inverse")
    func concatenateSplitRoundTrip() {
        var generator = SeededGenerator(seed: 7)
        let inputs = (0..<5).map { _ in generator.normal([1, 2, 3]) }
        let joined = DynamicBatcher<GatedDoubler>.concatenate(inputs)
        #expect(joined.shape == [5, 2, 3])
        let parts = DynamicBatcher<GatedDoubler>.split(joined, count: 5)
        #expect(parts.map(\.storage) == inputs.map(\.storage))
        #expect(parts.allSatisfy { $0.shape == [1, 2, 3] })
    }

    /// A real network: scores of puzzles run in one batch agree with each run alone (BLAS may
    /// order sums differently for another number of rows: 1e-4 is far above float32 rounding of
    /// these O(1)–O(10) scores and far below any gap that changes a matching).
    @Test("a batched forward pass gives each puzzle its own scores", .timeLimit(.minutes(1)))
    func batchedScoresMatchLoneScores() throws {
        let configuration = JigsawNetworkConfiguration(grid: 3, imageSize: 27, hiddenChannels: 4, kernelSize: 3,
                                                       hiddenUnits: 16, setContext: true, attentionBlocks: 1)
        let reference = try JigsawNetwork(configuration: configuration, seed: 3)
        reference.isTraining = false
        let networks = try (0..<2).map { _ in try JigsawNetwork(configuration: configuration, seed: 3) }
        for network in networks { network.isTraining = false }
        let batcher = DynamicBatcher(networks, policy: BatchPolicy(maximumSize: 8)) { network, pieces in
            JigsawInference.scores(network, pieces: pieces)
        }
        var generator = SeededGenerator(seed: 11)
        let puzzles = (0..<24).map { _ in generator.uniform(reference.inputShape(batch: 1)) }
        let expected = puzzles.map { JigsawInference.scores(reference, pieces: $0) }
        let outputs = Locked<[Int: Tensor]>([:])
        DispatchQueue.concurrentPerform(iterations: puzzles.count) { index in
            let output = batcher.run(puzzles[index]).output
            outputs.update { $0[index] = output }
        }
        for index in puzzles.indices {
            let output = try #require(outputs.value[index])
            #expect(output.shape == expected[index].shape)
            #expect(output.maxAbsDifference(expected[index]) <= 1e-4, "puzzle \(index)")
        }
        #expect(batcher.currentStatistics.requests == puzzles.count)
    }
}
