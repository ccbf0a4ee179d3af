import Foundation
import Jigsaw
import TensorKit

/// A 4032 × 3024 (12-MP phone photo) RGB JPEG at quality 90, 4:2:0: smooth gradients with noise,
/// so the entropy-coded data is about as large as a real photo's.
private func photoJPEG() -> [UInt8]? {
    let width = 4032, height = 3024
    var generator = SeededGenerator(seed: 12)
    var pixels = [UInt8](repeating: 0, count: width * height * 3)
    for y in 0..<height {
        for x in 0..<width {
            let base = (y * width + x) * 3
            let noise = Int(generator.next() & 15)
            pixels[base] = UInt8(truncatingIfNeeded: x * 255 / width + noise)
            pixels[base + 1] = UInt8(truncatingIfNeeded: y * 255 / height + noise)
            pixels[base + 2] = UInt8(truncatingIfNeeded: (x + y) * 127 / (width + height) + 64 + noise)
        }
    }
    return try? JPEG.encode(Image(width: width, height: height, channels: 3, pixels: pixels), quality: 90)
}

let imageBenchmarks: [Benchmark] = [
    // What a solve answer's reconstruction costs: the stored display pieces of a 480 × 360 photo
    // cut 4 × 4 (`[1, 16, 3, 90, 120]` in [0, 1]) reassembled, turned into 8-bit pixels and
    // encoded as PNG with libpng's fast flag (or as JPEG at quality 90, what colour answers
    // use); each step's median and the whole PNG path. Noise is the worst case for both.
    Benchmark(op: "reconstruction_encode") {
        var generator = SeededGenerator(seed: 4)
        let pieces = generator.uniform([1, 16, 3, 90, 120])
        let permutation = Array((0..<16).reversed())
        var assembled = Tensor(shape: [1])
        let assemble = medianMilliseconds(budget: 1) { assembled = Puzzle.assemble(pieces, permutations: [permutation]) }
        var image = Image(width: 0, height: 0, channels: 3)
        let convert = medianMilliseconds(budget: 1) { image = Image(tensor: assembled.reshaped([3, 360, 480])) }
        var bytes = 0
        let encode = medianMilliseconds(budget: 1) { bytes = (try? PNG.encode(image, fast: true))?.count ?? 0 }
        var jpegBytes = 0
        let jpeg = medianMilliseconds(budget: 1) { jpegBytes = (try? JPEG.encode(image, quality: 90))?.count ?? 0 }
        let whole = medianMilliseconds(budget: 1) {
            _ = try? PNG.encode(Image(tensor: Puzzle.assemble(pieces, permutations: [permutation]).reshaped([3, 360, 480])), fast: true)
        }
        emit(["op": "reconstruction_encode", "width": 480, "height": 360, "grid": 4, "assemble_ms": assemble,
              "to_pixels_ms": convert, "png_ms": encode, "png_bytes": bytes, "jpeg_ms": jpeg, "jpeg_bytes": jpegBytes, "ms": whole])
    },
    // Decoding a 12-MP JPEG at full size and with the DCT scales a longest needed side selects
    // (1024 → 1/2, 1000 → 1/4, 500 → 1/8): median milliseconds and the decoded size.
    Benchmark(op: "jpeg_decode") {
        guard let jpeg = photoJPEG() else { return }
        for side in [nil, 1024, 1000, 500] as [Int?] {
            var decoded = Image(width: 0, height: 0, channels: 3)
            let ms = medianMilliseconds(warmup: 1, minRuns: 5, budget: 2.0) {
                decoded = (try? JPEG.decode(jpeg, maximumSamples: 64 << 20, maximumSide: side)) ?? decoded
            }
            let denominator = side.flatMap {
                JPEG.scaleDenominator(width: 4032, height: 3024, channels: 3, maximumSamples: 64 << 20, maximumSide: $0)
            } ?? 1
            emit(["op": "jpeg_decode", "width": 4032, "height": 3024, "bytes": jpeg.count,
                  "maximum_side": side.map(String.init) ?? "none", "scale": "1/\(denominator)",
                  "decoded": "\(decoded.width)x\(decoded.height)", "decoded_bytes": decoded.pixels.count, "ms": ms])
        }
    },
]
