import Jigsaw
import Testing
import TensorKit

@Suite struct ImageTests {
    @Test func tensorConversionUsesLumaAndCompositesAlpha() {
        // One RGBA pixel (200, 100, 50, alpha 51 = 0.2) and one opaque gray-ish pixel.
        let image = Image(width: 2, height: 1, channels: 4, pixels: [200, 100, 50, 51, 10, 20, 30, 255])
        let onBlack = image.tensor(channels: 3, background: .black)
        #expect(onBlack.shape == [3, 1, 2])
        // Closed form: c·a + bg·(1 − a) with a = 0.2.
        let expectedBlack: [Float] = [0.2 * 200 / 255, 10 / 255.0, 0.2 * 100 / 255, 20 / 255.0, 0.2 * 50 / 255, 30 / 255.0]
        #expect(zip(onBlack.storage, expectedBlack).allSatisfy { abs($0 - $1) < 1e-6 })
        let onWhite = image.tensor(channels: 3, background: .white)
        #expect(abs(onWhite[0, 0, 0] - (0.2 * 200 / 255 + 0.8)) < 1e-6)
        let gray = image.tensor(channels: 1, background: .white)
        let r = 0.2 * 200 / 255 + 0.8, g = 0.2 * 100 / 255 + 0.8, b = 0.2 * 50 / 255 + 0.8
        #expect(abs(gray[0, 0, 0] - Float(0.299 * r + 0.587 * g + 0.114 * b)) < 1e-6)
        #expect(abs(gray[0, 0, 1] - Float((0.299 * 10 + 0.587 * 20 + 0.114 * 30) / 255)) < 1e-6)
        // A gray image stays one channel by default and replicates into three.
        let plain = Image(width: 1, height: 1, channels: 1, pixels: [51])
        #expect(plain.tensor().storage == [0.2])
        #expect(plain.tensor(channels: 3).storage == [0.2, 0.2, 0.2])
    }

    @Test func tensorToImageRoundTripsAndClamps() {
        var rng = SeededGenerator(seed: 5)
        let image = Image(width: 7, height: 4, channels: 3, pixels: (0..<84).map { _ in UInt8(rng.nextInt(below: 256)) })
        #expect(Image(tensor: image.tensor()) == image, "seed 5")
        let wild = Tensor(shape: [1, 1, 4], storage: [-3, 0.5, 2, .nan])
        #expect(Image(tensor: wild).pixels == [0, 128, 255, 0])
    }

    @Test func channelConversions() {
        let rgba = Image(width: 1, height: 1, channels: 4, pixels: [255, 0, 0, 128])
        // 255 · 128/255 = 128 on black; 255·(128/255) + 255·(127/255) = 255 on white.
        #expect(rgba.converted(toChannels: 3).pixels == [128, 0, 0])
        #expect(rgba.converted(toChannels: 3, background: .white).pixels == [255, 127, 127])
        // Luma of pure red on black: 0.299 · 128 = 38.27 → 38.
        #expect(rgba.converted(toChannels: 1).pixels == [38])
        let gray = Image(width: 2, height: 1, channels: 1, pixels: [9, 200])
        #expect(gray.converted(toChannels: 3).pixels == [9, 9, 9, 200, 200, 200])
        #expect(gray.converted(toChannels: 4).pixels == [9, 9, 9, 255, 200, 200, 200, 255])
    }

    @Test(arguments: [0 as UInt64, 1, 2])
    func areaDownscaleByTwoIsTheBlockMean(seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        let image = Image(width: 8, height: 6, channels: 3, pixels: (0..<144).map { _ in UInt8(rng.nextInt(below: 256)) })
        let small = image.resized(width: 4, height: 3, filter: .area)
        for y in 0..<3 {
            for x in 0..<4 {
                for c in 0..<3 {
                    let sum = Int(image[2 * x, 2 * y, c]) + Int(image[2 * x + 1, 2 * y, c])
                        + Int(image[2 * x, 2 * y + 1, c]) + Int(image[2 * x + 1, 2 * y + 1, c])
                    #expect(abs(Int(small[x, y, c]) - Int((Double(sum) / 4).rounded())) <= 0,
                            "seed \(seed) at (\(x), \(y), \(c))")
                }
            }
        }
    }

    @Test func bilinearUpscaleInterpolatesARamp() {
        // A horizontal ramp 0, 100 upscaled to width 4: centres at source x = −0.25, 0.25, 0.75,
        // 1.25, clamped to [0, 1] → 0, 25, 75, 100.
        let ramp = Image(width: 2, height: 1, channels: 1, pixels: [0, 100])
        #expect(ramp.resized(width: 4, height: 2).pixels == [0, 25, 75, 100, 0, 25, 75, 100])
        let constant = Image(width: 5, height: 3, channels: 1, repeating: 77)
        #expect(constant.resized(width: 11, height: 7).pixels.allSatisfy { $0 == 77 })
        #expect(constant.resized(width: 2, height: 2, filter: .area).pixels.allSatisfy { $0 == 77 })
    }

    @Test func centerCropAndFill() {
        let image = Image(width: 5, height: 4, channels: 1, pixels: (0..<20).map { UInt8($0) })
        // Offsets (5 − 2) / 2 = 1 and (4 − 2) / 2 = 1.
        #expect(image.centerCropped(width: 2, height: 2).pixels == [6, 7, 11, 12])
        // 5×4 → cover 2×2: scale 0.5 → 3×2 (rounded), crop the middle column pair.
        let filled = image.resizedToFill(width: 2, height: 2)
        #expect(filled.width == 2 && filled.height == 2)
        let wide = Image(width: 4, height: 2, channels: 1, pixels: [1, 2, 3, 4, 5, 6, 7, 8])
        #expect(wide.resizedToFill(width: 2, height: 2).pixels == [2, 3, 6, 7])
    }
}
