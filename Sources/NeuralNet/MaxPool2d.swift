import TensorKit

/// Max pooling with a square window and stride equal to the window (PyTorch's `nn.MaxPool2d(k)`).
///
/// Shapes: `[N, C, H, W]` → `[N, C, ⌊H/k⌋, ⌊W/k⌋]`; trailing rows and columns that do not fill a
/// window are dropped, like PyTorch's default `ceil_mode=False`.
///
/// The gradient flows only to the window's argmax. As in PyTorch's CPU kernel, the argmax is the
/// first maximum in row-major scan order (a later equal value does not replace it) and a NaN
/// replaces any value (`val > max || isnan(val)`), so NaN propagates.
public final class MaxPool2d {
    public let kernelSize: Int
    /// Workers used by ``forward(_:)`` and ``backward(_:)``.
    public var threadCount: Int = defaultThreadCount()

    private var inputShape: [Int] = []
    /// The argmax offset `u·k + v` within each window, one byte per output element.
    private var argmax = ByteBuffer(count: 0)

    public init(kernelSize: Int = 2) {
        precondition(kernelSize > 0 && kernelSize <= 15, "pooling window must be 1…15, got \(kernelSize)")
        self.kernelSize = kernelSize
    }

    /// The output height and width for an input of `height × width`.
    public func outputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        (height / kernelSize, width / kernelSize)
    }

    // MARK: - Per-sample kernels

    /// Pools `channels` planes of `height × width` into `output` and records each argmax; with
    /// `rectify` it also applies ReLU to the pooled values (max and ReLU commute with the argmax).
    func forwardSample(input: UnsafePointer<Float>, channels: Int, height: Int, width: Int,
                       output: UnsafeMutablePointer<Float>, argmax: UnsafeMutablePointer<UInt8>,
                       rectify: Bool = false) {
        let k = kernelSize
        let (outHeight, outWidth) = outputSize(height: height, width: width)
        var out = 0
        for c in 0..<channels {
            let plane = input + c * height * width
            for i in 0..<outHeight {
                let top = plane + i * k * width
                if k == 2 {
                    let bottom = top + width
                    // Four windows at a time; a last partial group is redone overlapping the previous
                    // one (pooling is idempotent), so the scalar tail runs only for rows under 4 windows.
                    var j = 0
                    while j < outWidth && outWidth >= 4 {
                        if j + 4 > outWidth { j = outWidth - 4 }
                        let o = out + j
                        let upper = UnsafeRawPointer(top + 2 * j).loadUnaligned(as: SIMD8<Float>.self)
                        let lower = UnsafeRawPointer(bottom + 2 * j).loadUnaligned(as: SIMD8<Float>.self)
                        var best = upper.evenHalf
                        var index = SIMD4<Int32>(repeating: 0)
                        // Scan order (0,0), (0,1), (1,0), (1,1); a later value wins only if larger or NaN.
                        var candidate = upper.oddHalf
                        var wins = (candidate .> best) .| (candidate .!= candidate)
                        best.replace(with: candidate, where: wins)
                        index.replace(with: 1, where: wins)
                        candidate = lower.evenHalf
                        wins = (candidate .> best) .| (candidate .!= candidate)
                        best.replace(with: candidate, where: wins)
                        index.replace(with: 2, where: wins)
                        candidate = lower.oddHalf
                        wins = (candidate .> best) .| (candidate .!= candidate)
                        best.replace(with: candidate, where: wins)
                        index.replace(with: 3, where: wins)
                        if rectify { best.replace(with: 0, where: best .< 0) }
                        UnsafeMutableRawPointer(output + o).storeBytes(of: best, as: SIMD4<Float>.self)
                        let bytes = SIMD4<UInt8>(truncatingIfNeeded: index)
                        UnsafeMutableRawPointer(argmax + o).storeBytes(of: bytes, as: SIMD4<UInt8>.self)
                        j += 4
                    }
                    if outWidth >= 4 { out += outWidth; continue }
                    while j < outWidth {
                        let x = 2 * j
                        var best = top[x], index: UInt8 = 0
                        let b = top[x + 1], c2 = bottom[x], d = bottom[x + 1]
                        if b > best || b.isNaN { best = b; index = 1 }
                        if c2 > best || c2.isNaN { best = c2; index = 2 }
                        if d > best || d.isNaN { best = d; index = 3 }
                        output[out] = rectify && best < 0 ? 0 : best
                        argmax[out] = index
                        out += 1
                        j += 1
                    }
                } else {
                    for j in 0..<outWidth {
                        var best = -Float.infinity, index: UInt8 = 0
                        for u in 0..<k {
                            for v in 0..<k {
                                let value = top[u * width + j * k + v]
                                if value > best || value.isNaN {
                                    best = value
                                    index = UInt8(u * k + v)
                                }
                            }
                        }
                        output[out] = rectify && best < 0 ? 0 : best
                        argmax[out] = index
                        out += 1
                    }
                }
            }
        }
    }

    /// Writes the input gradient of one sample: zero except `dY` at each window's argmax.
    func backwardSample(outputGradient: UnsafePointer<Float>, argmax: UnsafePointer<UInt8>,
                        channels: Int, height: Int, width: Int,
                        inputGradient: UnsafeMutablePointer<Float>) {
        let k = kernelSize
        let (outHeight, outWidth) = outputSize(height: height, width: width)
        let covered = k == 2 && outWidth >= 4 && height % 2 == 0 && width % 2 == 0
        if !covered { inputGradient.update(repeating: 0, count: channels * height * width) }
        var out = 0
        for c in 0..<channels {
            let plane = inputGradient + c * height * width
            for i in 0..<outHeight {
                let top = plane + i * k * width
                if k == 2 && outWidth >= 4 {
                    // Writes every position of four windows at once (zeros off the argmax), with the
                    // same overlapping last group as the forward pass.
                    let bottom = top + width
                    var j = 0
                    while j < outWidth {
                        if j + 4 > outWidth { j = outWidth - 4 }
                        let g = UnsafeRawPointer(outputGradient + out + j).loadUnaligned(as: SIMD4<Float>.self)
                        let index = SIMD4<Int32>(truncatingIfNeeded:
                            UnsafeRawPointer(argmax + out + j).loadUnaligned(as: SIMD4<UInt8>.self))
                        let zero = SIMD4<Float>(repeating: 0)
                        var upper = SIMD8<Float>(), lower = SIMD8<Float>()
                        upper.evenHalf = zero.replacing(with: g, where: index .== 0)
                        upper.oddHalf = zero.replacing(with: g, where: index .== 1)
                        lower.evenHalf = zero.replacing(with: g, where: index .== 2)
                        lower.oddHalf = zero.replacing(with: g, where: index .== 3)
                        UnsafeMutableRawPointer(top + 2 * j).storeBytes(of: upper, as: SIMD8<Float>.self)
                        UnsafeMutableRawPointer(bottom + 2 * j).storeBytes(of: lower, as: SIMD8<Float>.self)
                        j += 4
                    }
                    out += outWidth
                    continue
                }
                for j in 0..<outWidth {
                    let offset = Int(argmax[out])
                    let u = offset / k, v = offset - u * k
                    top[u * width + j * k + v] = outputGradient[out]
                    out += 1
                }
            }
        }
    }

    // MARK: - Batch interface

    /// Pools a batch `[N, C, H, W]`; keeps the argmax for ``backward(_:)``.
    public func forward(_ input: Tensor) -> Tensor {
        precondition(input.rank == 4, "MaxPool2d expects [N, C, H, W], got \(input.shape)")
        let (count, channels, height, width) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        let (outHeight, outWidth) = outputSize(height: height, width: width)
        inputShape = input.shape
        var output = Tensor(shape: [count, channels, outHeight, outWidth])
        let outputSize = channels * outHeight * outWidth, inputSize = channels * height * width
        if argmax.count < count * outputSize { argmax = ByteBuffer(count: count * outputSize) }
        let indices = argmax.pointer
        input.withUnsafeBufferPointer { x in
            output.withUnsafeMutableBufferPointer { y in
                let (x, y) = (x.baseAddress!, y.baseAddress!)
                Parallel.forEachRange(count: count, workers: threadCount) { _, range in
                    for n in range {
                        forwardSample(input: x + n * inputSize, channels: channels, height: height, width: width,
                                      output: y + n * outputSize, argmax: indices + n * outputSize)
                    }
                }
            }
        }
        return output
    }

    /// Routes `dY [N, C, ⌊H/k⌋, ⌊W/k⌋]` to the argmax of each window of the last forward input.
    public func backward(_ outputGradient: Tensor) -> Tensor {
        precondition(inputShape.count == 4, "MaxPool2d.backward before forward")
        let (count, channels, height, width) = (inputShape[0], inputShape[1], inputShape[2], inputShape[3])
        let (outHeight, outWidth) = outputSize(height: height, width: width)
        precondition(outputGradient.shape == [count, channels, outHeight, outWidth],
                     "MaxPool2d gradient \(outputGradient.shape) does not match its output")
        var inputGradient = Tensor(shape: inputShape)
        let outputSize = channels * outHeight * outWidth, inputSize = channels * height * width
        let indices = argmax.pointer
        outputGradient.withUnsafeBufferPointer { dy in
            inputGradient.withUnsafeMutableBufferPointer { dx in
                let (dy, dx) = (dy.baseAddress!, dx.baseAddress!)
                Parallel.forEachRange(count: count, workers: threadCount) { _, range in
                    for n in range {
                        backwardSample(outputGradient: dy + n * outputSize, argmax: indices + n * outputSize,
                                       channels: channels, height: height, width: width,
                                       inputGradient: dx + n * inputSize)
                    }
                }
            }
        }
        return inputGradient
    }
}
