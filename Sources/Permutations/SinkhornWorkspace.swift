#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reusable scratch memory for the Sinkhorn forward and backward passes.
///
/// Pass the same workspace to repeated calls (a training loop, a service worker) to avoid
/// allocating the `[m, n]` kernel and the per-thread vectors on every call; the buffers grow to
/// the largest problem seen and are kept. A workspace serves one call at a time: give each thread
/// its own. The output tensors are always fresh (they are the caller's values).
public final class SinkhornWorkspace {
    final class Buffer<Element> {
        private(set) var pointer: UnsafeMutablePointer<Element>
        private(set) var capacity: Int

        init() {
            pointer = UnsafeMutablePointer<Element>.allocate(capacity: 1)
            capacity = 1
        }

        /// A pointer to at least `count` elements (contents unspecified).
        func reserve(_ count: Int) -> UnsafeMutablePointer<Element> {
            if count > capacity {
                pointer.deallocate()
                pointer = UnsafeMutablePointer<Element>.allocate(capacity: count)
                capacity = count
            }
            return pointer
        }

        deinit { pointer.deallocate() }
    }

    private var floats: [Buffer<Float>] = []
    private var doubles: [Buffer<Double>] = []

    /// An empty workspace; buffers are allocated on first use.
    public init() {}

    /// The bytes currently held by this workspace.
    public var reservedBytes: Int {
        floats.reduce(0) { $0 + $1.capacity * MemoryLayout<Float>.stride }
            + doubles.reduce(0) { $0 + $1.capacity * MemoryLayout<Double>.stride }
    }

    /// One float buffer of at least `count` elements per worker.
    func floatBuffers(workers: Int, count: Int) -> [UnsafeMutablePointer<Float>] {
        while floats.count < workers { floats.append(Buffer()) }
        return (0..<workers).map { floats[$0].reserve(count) }
    }

    /// One double buffer of at least `count` elements per worker.
    func doubleBuffers(workers: Int, count: Int) -> [UnsafeMutablePointer<Double>] {
        while doubles.count < workers { doubles.append(Buffer()) }
        return (0..<workers).map { doubles[$0].reserve(count) }
    }
}

/// The number of threads worth using for one large call.
let sinkhornProcessorCount: Int = {
    let online = sysconf(Int32(_SC_NPROCESSORS_ONLN))
    return Swift.max(1, Int(online))
}()
