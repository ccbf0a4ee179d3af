import Dispatch
import Foundation

/// Static partitioning of batch work over a few threads.
///
/// Each worker gets one contiguous range, always the same for the same `count` and `workers`, so
/// per-worker partial sums reduce in a fixed order and results repeat exactly for a given thread
/// count.
enum Parallel {
    /// Calls `body(worker, range)` for `workers` contiguous ranges covering `0..<count`, in
    /// parallel when more than one worker has work.
    static func forEachRange(count: Int, workers: Int, _ body: (Int, Range<Int>) -> Void) {
        forEach(count: count, workers: workers, split: { range($0, of: $1, count: $2) }, body)
    }

    /// Runs `body(worker, split(worker, used, count))` on `used = min(workers, count)` workers.
    private static func forEach(count: Int, workers: Int, split: (Int, Int, Int) -> Range<Int>,
                                _ body: (Int, Range<Int>) -> Void) {
        let used = max(1, min(workers, count))
        if used == 1 {
            body(0, 0..<count)
            return
        }
        // The workers only touch disjoint ranges and per-worker scratch, and `concurrentPerform`
        // returns after all of them finish, so the closure never outlives this call.
        withoutActuallyEscaping(body) { body in
            withoutActuallyEscaping(split) { split in
                let shared = UncheckedSendable((body, split))
                DispatchQueue.concurrentPerform(iterations: used) { worker in
                    shared.value.0(worker, shared.value.1(worker, used, count))
                }
            }
        }
    }

    /// Rows (pieces) per granule: row-parallel passes split their rows only at multiples of this,
    /// and ``Linear/forEachChunk(of:_:)`` cuts its BLAS calls at multiples of a power of two that
    /// divides it. Every row then goes through the same BLAS call (same rows, same sizes) whatever
    /// the worker count, so a forward pass is bitwise the same on 1 or 2 threads (BLAS kernels
    /// round differently for different matrix sizes, which breaks exact ties between identical
    /// pieces differently).
    static let rowGranule = 64

    /// ``forEachRange(count:workers:_:)`` for row-parallel passes: the ranges start and end at
    /// multiples of ``rowGranule`` (or at `count`); a worker may get an empty range.
    static func forEachRowRange(count: Int, workers: Int, _ body: (Int, Range<Int>) -> Void) {
        forEach(count: count, workers: workers, split: { rowRange($0, of: $1, count: $2) }, body)
    }

    /// The `worker`-th of `workers` contiguous ranges of `0..<count` cut at multiples of ``rowGranule``.
    static func rowRange(_ worker: Int, of workers: Int, count: Int) -> Range<Int> {
        func boundary(_ w: Int) -> Int { w >= workers ? count : (w * count / workers) / rowGranule * rowGranule }
        return boundary(worker)..<boundary(worker + 1)
    }

    /// The `worker`-th of `workers` nearly equal contiguous ranges of `0..<count`.
    static func range(_ worker: Int, of workers: Int, count: Int) -> Range<Int> {
        (worker * count / workers)..<((worker + 1) * count / workers)
    }
}

/// Carries a value into `concurrentPerform`'s `@Sendable` closure; callers guarantee the workers
/// use it without data races (disjoint writes).
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// A fixed-size, zero-initialised workspace with a stable address.
///
/// Layers keep these across steps so the steady state allocates nothing; the pointer may be
/// handed to parallel workers because the buffer outlives every call that uses it.
final class WorkBuffer<Element: ExpressibleByIntegerLiteral> {
    let pointer: UnsafeMutablePointer<Element>
    let count: Int

    init(count: Int) {
        self.count = count
        pointer = .allocate(capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
    }

    deinit { pointer.deallocate() }

    func zero() { pointer.update(repeating: 0, count: count) }
}

/// A float workspace (activations, gradients, partial sums).
typealias FloatBuffer = WorkBuffer<Float>
/// A byte workspace (pooling argmax offsets).
typealias ByteBuffer = WorkBuffer<UInt8>

/// The default worker count: the active processors, at least one.
func defaultThreadCount() -> Int {
    max(1, ProcessInfo.processInfo.activeProcessorCount)
}
