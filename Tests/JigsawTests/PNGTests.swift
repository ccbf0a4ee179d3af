import Jigsaw
import Testing
import TestSupport
import TensorKit

/// One decode case: a hand-built PNG and the 8-bit interleaved pixels expected from it, worked
/// out from the PNG specification (sample scaling, palette lookup, gray replication).
struct PNGCase: CustomTestStringConvertible, Sendable {
    var name: String
    var png: [UInt8]
    var channels: Int
    var expected: [UInt8]
    /// Largest allowed difference per sample (0: exact).
    var tolerance = 0
    var testDescription: String { name }
}

private func makeCases() -> [PNGCase] {
    var rng = SeededGenerator(seed: 2024)
    let (w, h) = (13, 9) // odd sizes exercise partial Adam7 passes and partial bytes
    let pixels = w * h
    func random(_ count: Int, below bound: Int) -> [Int] { (0..<count).map { _ in rng.nextInt(below: bound) } }
    // round(v / 257) is the exact 16 → 8 bit scaling; (2v + 257) / 514 computes it in integers.
    func to8(_ v: Int) -> UInt8 { UInt8((2 * v + 257) / 514) }
    var cases: [PNGCase] = []

    let gray8 = random(pixels, below: 256)
    for interlaced in [false, true] {
        cases.append(PNGCase(name: "gray 8-bit\(interlaced ? " interlaced" : "")",
                             png: PNGBuilder(width: w, height: h, bitDepth: 8, colourType: .gray, interlaced: interlaced, samples: gray8).bytes(),
                             channels: 1, expected: gray8.map { UInt8($0) }))
    }
    for depth in [1, 2, 4] {
        let values = random(pixels, below: 1 << depth)
        let scale = 255 / ((1 << depth) - 1)
        cases.append(PNGCase(name: "gray \(depth)-bit", png: PNGBuilder(width: w, height: h, bitDepth: depth, colourType: .gray, samples: values).bytes(),
                             channels: 1, expected: values.map { UInt8($0 * scale) }))
    }
    let gray16 = random(pixels, below: 65536)
    cases.append(PNGCase(name: "gray 16-bit", png: PNGBuilder(width: w, height: h, bitDepth: 16, colourType: .gray, samples: gray16).bytes(),
                         channels: 1, expected: gray16.map(to8)))
    let grayAlpha = random(2 * pixels, below: 256)
    cases.append(PNGCase(name: "gray+alpha 8-bit", png: PNGBuilder(width: w, height: h, bitDepth: 8, colourType: .grayAlpha, samples: grayAlpha).bytes(),
                         channels: 4, expected: (0..<pixels).flatMap { p in
                             let g = UInt8(grayAlpha[2 * p]); return [g, g, g, UInt8(grayAlpha[2 * p + 1])] }))
    let rgb = random(3 * pixels, below: 256)
    for interlaced in [false, true] {
        cases.append(PNGCase(name: "RGB 8-bit\(interlaced ? " interlaced" : "")",
                             png: PNGBuilder(width: w, height: h, bitDepth: 8, colourType: .rgb, interlaced: interlaced, samples: rgb).bytes(),
                             channels: 3, expected: rgb.map { UInt8($0) }))
    }
    let rgb16 = random(3 * pixels, below: 65536)
    cases.append(PNGCase(name: "RGB 16-bit interlaced", png: PNGBuilder(width: w, height: h, bitDepth: 16, colourType: .rgb, interlaced: true, samples: rgb16).bytes(),
                         channels: 3, expected: rgb16.map(to8)))
    // libpng's interlaced 16-bit path premultiplies alpha; opaque-ish pixels keep colour within ±1.
    let gray16i = random(pixels, below: 65536)
    cases.append(PNGCase(name: "gray 16-bit interlaced", png: PNGBuilder(width: w, height: h, bitDepth: 16, colourType: .gray, interlaced: true, samples: gray16i).bytes(),
                         channels: 1, expected: gray16i.map(to8)))
    let rgba16i = (0..<(4 * pixels)).map { $0 % 4 == 3 ? 49152 + rng.nextInt(below: 16384) : rng.nextInt(below: 65536) }
    cases.append(PNGCase(name: "RGBA 16-bit interlaced", png: PNGBuilder(width: w, height: h, bitDepth: 16, colourType: .rgba, interlaced: true, samples: rgba16i).bytes(),
                         channels: 4, expected: rgba16i.map(to8), tolerance: 1))
    let ga16i = (0..<(2 * pixels)).map { $0 % 2 == 1 ? 65535 : rng.nextInt(below: 65536) }
    cases.append(PNGCase(name: "gray+alpha 16-bit interlaced opaque", png: PNGBuilder(width: w, height: h, bitDepth: 16, colourType: .grayAlpha, interlaced: true, samples: ga16i).bytes(),
                         channels: 4, expected: (0..<pixels).flatMap { p in let g = to8(ga16i[2 * p]); return [g, g, g, 255] }))
    let rgba = random(4 * pixels, below: 256)
    cases.append(PNGCase(name: "RGBA 8-bit", png: PNGBuilder(width: w, height: h, bitDepth: 8, colourType: .rgba, samples: rgba).bytes(),
                         channels: 4, expected: rgba.map { UInt8($0) }))
    let rgba16 = random(4 * pixels, below: 65536)
    cases.append(PNGCase(name: "RGBA 16-bit", png: PNGBuilder(width: w, height: h, bitDepth: 16, colourType: .rgba, samples: rgba16).bytes(),
                         channels: 4, expected: rgba16.map(to8)))
    let palette = (0..<16).map { _ in (UInt8(rng.nextInt(below: 256)), UInt8(rng.nextInt(below: 256)), UInt8(rng.nextInt(below: 256))) }
    let indices = random(pixels, below: 16)
    cases.append(PNGCase(name: "palette 4-bit", png: PNGBuilder(width: w, height: h, bitDepth: 4, colourType: .palette, samples: indices, palette: palette).bytes(),
                         channels: 3, expected: indices.flatMap { [palette[$0].0, palette[$0].1, palette[$0].2] }))
    // tRNS shorter than the palette: entries past its end are opaque.
    let alphas: [UInt8] = (0..<10).map { _ in UInt8(rng.nextInt(below: 256)) }
    cases.append(PNGCase(name: "palette 8-bit with tRNS interlaced",
                         png: PNGBuilder(width: w, height: h, bitDepth: 8, colourType: .palette, interlaced: true, samples: indices,
                                         palette: palette, transparency: alphas).bytes(),
                         channels: 4, expected: indices.flatMap { [palette[$0].0, palette[$0].1, palette[$0].2, $0 < 10 ? alphas[$0] : 255] }))
    return cases
}

@Suite struct PNGTests {
    static let cases = makeCases()

    @Test(arguments: cases)
    func decodesEveryColourType(_ testCase: PNGCase) throws {
        let image = try PNG.decode(testCase.png)
        #expect(image.width == 13 && image.height == 9)
        #expect(image.channels == testCase.channels)
        if testCase.tolerance == 0 {
            #expect(image.pixels == testCase.expected)
        } else {
            #expect(image.pixels.count == testCase.expected.count)
            #expect(zip(image.pixels, testCase.expected).allSatisfy { abs(Int($0) - Int($1)) <= testCase.tolerance })
        }
        #expect(try PNG.header(of: testCase.png) == PNG.Header(width: 13, height: 9, channels: testCase.channels))
    }

    @Test(arguments: [1, 3, 4])
    func encodeDecodeRoundTrip(channels: Int) throws {
        var rng = SeededGenerator(seed: UInt64(channels))
        let image = Image(width: 17, height: 5, channels: channels,
                          pixels: (0..<(17 * 5 * channels)).map { _ in UInt8(rng.nextInt(below: 256)) })
        let bytes = try PNG.encode(image)
        #expect(Array(bytes.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        #expect(try PNG.decode(bytes) == image, "seed \(channels)")
    }

    static func rgbFile() -> [UInt8] {
        PNGBuilder(width: 4, height: 3, bitDepth: 8, colourType: .rgb, samples: Array(0..<36)).bytes()
    }

    @Test func refusesHugeImagesBeforeDecoding() throws {
        // 50,000 × 40,000 RGB declared in the header, with almost no data behind it.
        var huge = PNGBuilder(width: 50_000, height: 40_000, bitDepth: 8, colourType: .rgb, samples: []).bytes()
        huge = Array(huge.prefix(33)) + PNGBuilder.chunk("IDAT", [0x78, 0x01]) + PNGBuilder.chunk("IEND", [])
        #expect(throws: PNGError.imageTooLarge(width: 50_000, height: 40_000, channels: 3, limit: PNG.defaultMaximumSamples)) {
            try PNG.decode(huge)
        }
        #expect(throws: PNGError.imageTooLarge(width: 4, height: 3, channels: 3, limit: 35)) {
            try PNG.decode(Self.rgbFile(), maximumSamples: 35)
        }
        #expect(try PNG.decode(Self.rgbFile(), maximumSamples: 36).pixels == (0..<36).map { UInt8($0) })
    }

    static let malformed: [(String, [UInt8], PNGError)] = {
        let good = rgbFile()
        var badHeaderCRC = good
        badHeaderCRC[29] ^= 0xFF            // the last byte of IHDR's CRC
        var badDataCRC = good
        badDataCRC[good.count - 13] ^= 0x01 // the last byte of IDAT's CRC
        var badZlib = good
        badZlib[41 + 2] = 0x07              // a stored block header with the reserved block type 3
        let badZlibFixed = Array(badZlib[0..<33]) + PNGBuilder.chunk("IDAT", Array(badZlib[41..<(good.count - 24)])) + PNGBuilder.chunk("IEND", [])
        return [
            ("empty", [], .notPNG),
            ("not a PNG", Array("GIF89a and more bytes".utf8), .notPNG),
            ("signature only", Array(good.prefix(8)), .decodingFailed("read beyond end of data")),
            ("truncated header", Array(good.prefix(20)), .decodingFailed("read beyond end of data")),
            ("truncated data", Array(good.prefix(good.count - 30)), .decodingFailed("read beyond end of data")),
            ("bad IHDR CRC", badHeaderCRC, .decodingFailed("IHDR: CRC error")),
            ("bad IDAT CRC", badDataCRC, .decodingFailed("IDAT: CRC error")),
            ("corrupt zlib", badZlibFixed, .decodingFailed("IDAT: invalid block type")),
        ]
    }()

    @Test(arguments: malformed)
    func rejectsMalformedFiles(name: String, bytes: [UInt8], expected: PNGError) {
        #expect(throws: expected, "\(name)") { try PNG.decode(bytes) }
    }

    @Test func refusesToEncodeEmptyImages() {
        #expect(throws: PNGError.encodingFailed("image has no pixels")) {
            try PNG.encode(Image(width: 0, height: 3, channels: 1))
        }
    }
}
