/// A dense float32 tensor: a shape and contiguous row-major storage, with value semantics.
///
/// Storage is a Swift array, so copies are cheap until one of them is mutated. Images are NCHW,
/// convolution weights `[out, in, kh, kw]`, linear weights `[out, in]` (PyTorch's layouts).
public struct Tensor: Equatable, Sendable, CustomStringConvertible {
    /// The extent of each dimension, outermost first.
    @usableFromInline internal var _shape: [Int]
    public var shape: [Int] { _shape }
    /// The elements in row-major order; `storage.count == shape.reduce(1, *)`.
    public var storage: [Float]

    /// A tensor of the given shape filled with one value.
    @inlinable
    public init(shape: [Int], repeating value: Float = 0) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self._shape = shape
        self.storage = [Float](repeating: value, count: shape.reduce(1, *))
    }

    /// A tensor that takes ownership of `storage`, which must hold exactly `shape.reduce(1, *)` elements.
    @inlinable
    public init(shape: [Int], storage: [Float]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        precondition(storage.count == shape.reduce(1, *),
                     "storage of \(storage.count) elements does not fit shape \(shape)")
        self._shape = shape
        self.storage = storage
    }

    /// A tensor of zeros.
    @inlinable
    public static func zeros(_ shape: [Int]) -> Tensor { Tensor(shape: shape) }

    /// The number of elements.
    @inlinable public var count: Int { storage.count }
    /// The number of dimensions.
    @inlinable public var rank: Int { shape.count }

    /// The same elements under another shape with the same element count.
    @inlinable
    public func reshaped(_ newShape: [Int]) -> Tensor {
        Tensor(shape: newShape, storage: storage)
    }

    /// Changes the shape in place; the element count must not change.
    @inlinable
    public mutating func reshape(_ newShape: [Int]) {
        precondition(newShape.reduce(1, *) == storage.count, "cannot reshape \(shape) to \(newShape)")
        _shape = newShape
    }

    /// The row-major offset of a multi-index.
    @inlinable
    public func offset(_ indices: [Int]) -> Int {
        precondition(indices.count == shape.count, "index rank \(indices.count) for shape \(shape)")
        var offset = 0
        for (index, extent) in zip(indices, shape) {
            precondition(index >= 0 && index < extent, "index \(indices) out of range for shape \(shape)")
            offset = offset * extent + index
        }
        return offset
    }

    /// Element access by multi-index (for tests and cold paths; hot loops use the buffers).
    @inlinable
    public subscript(_ indices: Int...) -> Float {
        get { storage[offset(indices)] }
        set { storage[offset(indices)] = newValue }
    }

    @inlinable
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try storage.withUnsafeBufferPointer(body)
    }

    @inlinable
    public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (inout UnsafeMutableBufferPointer<Float>) throws -> R
    ) rethrows -> R {
        try storage.withUnsafeMutableBufferPointer(body)
    }

    /// The largest absolute elementwise difference to another tensor of the same shape.
    public func maxAbsDifference(_ other: Tensor) -> Float {
        precondition(shape == other.shape, "shapes \(shape) and \(other.shape) differ")
        var worst: Float = 0
        for i in 0..<storage.count { worst = Swift.max(worst, abs(storage[i] - other.storage[i])) }
        return worst
    }

    public var description: String {
        let head = storage.prefix(8).map { String($0) }.joined(separator: ", ")
        return "Tensor(shape: \(shape), [\(head)\(storage.count > 8 ? ", …" : "")])"
    }
}
