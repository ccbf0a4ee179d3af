import NeuralNet
import TensorKit

extension EdgeCompatibility {
    /// Costs from pieces given as images (any channel count; converted to RGB or kept gray).
    public init(pieces images: [Image], measure: Measure = .prediction()) {
        precondition(!images.isEmpty, "no pieces")
        let tensors = images.map { $0.tensor() }
        let shape = tensors[0].shape
        precondition(tensors.allSatisfy { $0.shape == shape }, "pieces differ in size")
        var joined = Tensor(shape: [images.count] + shape)
        let size = shape.reduce(1, *)
        joined.withUnsafeMutableBufferPointer { out in
            for (p, t) in tensors.enumerated() {
                t.withUnsafeBufferPointer { src in for k in 0..<size { out[p * size + k] = src[k] } }
            }
        }
        self.init(pieces: joined, measure: measure)
    }
}
