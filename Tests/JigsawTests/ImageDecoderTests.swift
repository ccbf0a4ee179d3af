import Jigsaw
import TensorKit
import Testing
import TestSupport

/// Hand-built image files for the decoder tests.
enum CodecFixtures {
    /// An RGB image of 8 × 8 blocks, each a colour distinct from its neighbours, so that position
    /// survives JPEG compression and any flip or turn shows.
    static func blocks(width: Int, height: Int) -> Image {
        var image = Image(width: width, height: height, channels: 3)
        for y in 0..<height {
            for x in 0..<width {
                let bx = x / 8, by = y / 8
                image[x, y, 0] = UInt8(truncatingIfNeeded: 30 + bx * 50)
                image[x, y, 1] = UInt8(truncatingIfNeeded: 30 + by * 60)
                image[x, y, 2] = UInt8((bx + by) % 2 == 0 ? 40 : 220)
            }
        }
        return image
    }

    /// The offset of the first marker `marker` (its `FF` byte) before the scan data.
    static func markerOffset(_ jpeg: [UInt8], _ marker: UInt8) -> Int? {
        var position = 2
        while position + 4 <= jpeg.count, jpeg[position] == 0xFF {
            if jpeg[position + 1] == marker { return position }
            if jpeg[position + 1] == 0xDA { return nil }
            position += 2 + (Int(jpeg[position + 2]) << 8 | Int(jpeg[position + 3]))
        }
        return nil
    }

    /// `jpeg` with its SOF0 claiming `width × height`.
    static func lyingAboutSize(_ jpeg: [UInt8], width: Int, height: Int) -> [UInt8] {
        var bytes = jpeg
        let sof = markerOffset(jpeg, 0xC0)!
        bytes[sof + 5] = UInt8(height >> 8); bytes[sof + 6] = UInt8(height & 0xFF)
        bytes[sof + 7] = UInt8(width >> 8); bytes[sof + 8] = UInt8(width & 0xFF)
        return bytes
    }

    /// An APP1 Exif segment whose IFD0 holds an orientation tag (and one other tag before it).
    static func exifSegment(orientation: Int, littleEndian: Bool) -> [UInt8] {
        func u16(_ v: Int) -> [UInt8] { littleEndian ? [UInt8(v & 0xFF), UInt8(v >> 8)] : [UInt8(v >> 8), UInt8(v & 0xFF)] }
        func u32(_ v: Int) -> [UInt8] { littleEndian ? u16(v & 0xFFFF) + u16(v >> 16) : u16(v >> 16) + u16(v & 0xFFFF) }
        var tiff: [UInt8] = littleEndian ? [0x49, 0x49] : [0x4D, 0x4D]
        tiff += u16(42) + u32(8) + u16(2)
        tiff += u16(0x010F) + u16(2) + u32(4) + Array("Cam\0".utf8)   // Make, inline ASCII
        tiff += u16(0x0112) + u16(3) + u32(1) + u16(orientation) + u16(0)
        tiff += u32(0)
        let body = Array("Exif".utf8) + [0, 0] + tiff
        let length = body.count + 2
        return [0xFF, 0xE1, UInt8(length >> 8), UInt8(length & 0xFF)] + body
    }

    /// `jpeg` with `segment` inserted right after SOI.
    static func splice(_ segment: [UInt8], into jpeg: [UInt8]) -> [UInt8] {
        Array(jpeg[0..<2]) + segment + Array(jpeg[2...])
    }

    /// A two-frame animated GIF (NETSCAPE2.0 loop extension), 2 × 2 pixels.
    static let animatedGIF: [UInt8] = {
        var bytes = Array("GIF89a".utf8) + [2, 0, 2, 0, 0xF0, 0, 0]          // screen, 2-colour table
        bytes += [0, 0, 0, 255, 255, 255]
        bytes += [0x21, 0xFF, 11] + Array("NETSCAPE2.0".utf8) + [3, 1, 0, 0, 0]
        for _ in 0..<2 {
            bytes += [0x21, 0xF9, 4, 0, 10, 0, 0, 0]                      // graphic control, 0.1 s
            bytes += [0x2C, 0, 0, 0, 0, 2, 0, 2, 0, 0]                    // image descriptor
            bytes += [2, 2, 0x44, 0x01, 0]                                // LZW data
        }
        return bytes + [0x3B]
    }()

    /// A WebP with only a VP8X chunk declaring a `width × height` canvas (`flags` 0x10 alpha,
    /// 0x02 animation).
    static func webpCanvas(width: Int, height: Int, flags: UInt8 = 0) -> [UInt8] {
        func u24(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v >> 16)] }
        let chunk = Array("VP8X".utf8) + [10, 0, 0, 0, flags, 0, 0, 0] + u24(width - 1) + u24(height - 1)
        let riffSize = 4 + chunk.count
        return Array("RIFF".utf8) + [UInt8(riffSize & 0xFF), UInt8(riffSize >> 8), 0, 0] + Array("WEBP".utf8) + chunk
    }
}

/// The error decoding `bytes` throws, or `nil` when it decodes.
func decodingError(_ bytes: [UInt8]) -> ImageDecodingError? {
    do {
        _ = try ImageDecoder.decode(bytes)
        return nil
    } catch {
        return error
    }
}

/// Mean absolute difference of two images of the same shape.
func meanDifference(_ a: Image, _ b: Image) -> Double {
    precondition(a.width == b.width && a.height == b.height && a.channels == b.channels)
    var total = 0
    for i in 0..<a.pixels.count { total += abs(Int(a.pixels[i]) - Int(b.pixels[i])) }
    return Double(total) / Double(a.pixels.count)
}

@Suite("Image decoding: PNG, JPEG, WebP")
struct ImageDecoderTests {
    static let picture = CodecFixtures.blocks(width: 48, height: 32)
    static let jpeg: [UInt8] = (try? JPEG.encode(picture, quality: 95, subsampling: .s444)) ?? []

    @Test("formats are told apart by their magic bytes")
    func sniffing() throws {
        #expect(ImageFormat.sniff(try PNG.encode(Self.picture)) == .png)
        #expect(ImageFormat.sniff(Self.jpeg) == .jpeg)
        #expect(ImageFormat.sniff(try WebP.encodeLossless(Self.picture)) == .webp)
        #expect(ImageFormat.sniff(CodecFixtures.animatedGIF) == .gif)
        #expect(ImageFormat.sniff(Array("II*\0\u{8}\0\0\0".utf8)) == .tiff)
        #expect(ImageFormat.sniff([0, 0, 0, 0x18] + Array("ftypheic\0\0\0\0mif1heic".utf8)) == .heic)
        #expect(ImageFormat.sniff([0, 0, 0, 0x1C] + Array("ftypavif\0\0\0\0avifmif1miaf".utf8)) == .avif)
        #expect(ImageFormat.sniff(Array("BM".utf8) + [0x46, 0, 0, 0, 0, 0, 0, 0, 0x36, 0, 0, 0, 40, 0, 0, 0]) == .bmp)
        #expect(ImageFormat.sniff(Array("BMW is a car".utf8)) == nil)
        #expect(ImageFormat.sniff([0xFF, 0xD8]) == nil)
        #expect(ImageFormat.sniff([UInt8]()) == nil)
    }

    static let badInputs: [(String, [UInt8], ImageDecodingError)] = {
        var generator = SeededGenerator(seed: 77)
        let garbage = (0..<500).map { _ in UInt8(truncatingIfNeeded: generator.next() | 1) }
        let jpeg = ImageDecoderTests.jpeg
        let png16 = PNGBuilder(width: 3, height: 2, bitDepth: 16, colourType: .rgb,
                               samples: (0..<18).map { $0 * 3000 }).bytes()
        let bmp = Array("BM".utf8) + [0x46, 0, 0, 0, 0, 0, 0, 0, 0x36, 0, 0, 0, 40, 0, 0, 0] + [UInt8](repeating: 0, count: 40)
        return [
            ("random garbage", garbage, .unrecognisedFormat),
            ("empty", [], .unrecognisedFormat),
            ("animated GIF", CodecFixtures.animatedGIF, .unsupportedFormat(.gif)),
            ("BMP", bmp, .unsupportedFormat(.bmp)),
            ("TIFF", Array("MM\0*\0\0\0\u{8}".utf8) + [UInt8](repeating: 0, count: 20), .unsupportedFormat(.tiff)),
            ("HEIC", [0, 0, 0, 0x18] + Array("ftypheic\0\0\0\0mif1heic".utf8), .unsupportedFormat(.heic)),
            ("JPEG whose SOF claims 60000 × 60000", CodecFixtures.lyingAboutSize(jpeg, width: 60_000, height: 60_000),
             .tooLarge(width: 60_000, height: 60_000, channels: 3, limit: PNG.defaultMaximumSamples)),
            ("JPEG cut in half", Array(jpeg.prefix(jpeg.count / 2)), .truncated(.jpeg)),
            ("JPEG cut before its end marker", Array(jpeg.dropLast(2)), .truncated(.jpeg)),
            ("JPEG cut inside its header", Array(jpeg.prefix(40)), .truncated(.jpeg)),
            ("JPEG magic then garbage", [0xFF, 0xD8, 0xFF, 0xC0, 0, 3] + garbage, .corrupt(.jpeg, "Bogus marker length")),
            ("WebP declaring a 16384 × 16384 canvas", CodecFixtures.webpCanvas(width: 16_384, height: 16_384),
             .tooLarge(width: 16_384, height: 16_384, channels: 3, limit: PNG.defaultMaximumSamples)),
            ("WebP with alpha declaring a 9000 × 9000 canvas", CodecFixtures.webpCanvas(width: 9000, height: 9000, flags: 0x10),
             .tooLarge(width: 9000, height: 9000, channels: 4, limit: PNG.defaultMaximumSamples)),
            ("animated WebP", CodecFixtures.webpCanvas(width: 64, height: 64, flags: 0x02), .animated(.webp)),
            ("WebP cut short", Array((try? WebP.encodeLossless(ImageDecoderTests.picture))?.prefix(30) ?? []), .truncated(.webp)),
            ("PNG cut short", Array(png16.prefix(png16.count - 20)), .truncated(.png)),
        ]
    }()

    @Test("bad input is refused with the exact error", arguments: badInputs.indices)
    func refusesBadInput(index: Int) {
        let (name, bytes, expected) = Self.badInputs[index]
        do {
            let image = try ImageDecoder.decode(bytes)
            Issue.record("\(name): decoded \(image.width)×\(image.height)×\(image.channels), expected \(expected)")
        } catch {
            #expect(error == expected, "\(name)")
        }
    }

    @Test("a lying SOF is refused on the header at every scale, before any pixel is allocated")
    func lyingSizeWithScaling() {
        let liar = CodecFixtures.lyingAboutSize(Self.jpeg, width: 60_000, height: 60_000)
        // 1/8 of 60000 is 7500: 7500² × 3 samples is still over 16 Mi.
        #expect(throws: ImageDecodingError.tooLarge(width: 7500, height: 7500, channels: 3, limit: 16 << 20)) {
            try ImageDecoder.decode(liar, maximumSamples: 16 << 20, maximumSide: 1024)
        }
        #expect(throws: ImageDecodingError.tooLarge(width: 60_000, height: 60_000, channels: 3, limit: 16 << 20)) {
            try ImageDecoder.decode(liar, maximumSamples: 16 << 20)
        }
    }

    @Test("16-bit PNG is scaled to 8 bits")
    func sixteenBitPNG() throws {
        let samples = (0..<18).map { $0 * 3000 }
        let png = PNGBuilder(width: 3, height: 2, bitDepth: 16, colourType: .rgb, samples: samples).bytes()
        let image = try ImageDecoder.decode(png)
        #expect(image.width == 3 && image.height == 2 && image.channels == 3)
        #expect(image.pixels == samples.map { UInt8((2 * $0 + 257) / 514) })
    }

    @Test("baseline RGB JPEG decodes close to the original")
    func baselineJPEG() throws {
        let image = try ImageDecoder.decode(Self.jpeg)
        #expect(image.width == 48 && image.height == 32 && image.channels == 3)
        #expect(meanDifference(image, Self.picture) < 3)
        let header = try JPEG.header(of: Self.jpeg)
        #expect(header.colourSpace == .yCbCr && !header.isProgressive && header.orientation == 1 && header.subsampling == 0)
    }

    @Test("extraneous bytes before a marker only warn: the image decodes")
    func extraneousBytes() throws {
        let jpeg = Self.jpeg
        let beforeTables = Array(jpeg[0..<20]) + [0x00, 0x01] + Array(jpeg[20...])
        let beforeEnd = Array(jpeg.dropLast(2)) + [0x00, 0x11, 0xFF, 0xD9]
        for bytes in [beforeTables, beforeEnd] {
            let image = try ImageDecoder.decode(bytes)
            #expect(image.width == 48 && image.height == 32 && meanDifference(image, Self.picture) < 3)
        }
    }

    @Test("progressive JPEG decodes like the baseline one")
    func progressiveJPEG() throws {
        let progressive = try JPEG.encode(Self.picture, quality: 95, subsampling: .s444, progressive: true)
        #expect(try JPEG.header(of: progressive).isProgressive)
        let image = try ImageDecoder.decode(progressive)
        #expect(image.width == 48 && image.height == 32 && image.channels == 3)
        #expect(meanDifference(image, Self.picture) < 3)
        // Cut between scans (inside a Huffman table) and inside a scan.
        for fraction in [2.0 / 3, 0.9] {
            let cut = Array(progressive.prefix(Int(Double(progressive.count) * fraction)))
            #expect(decodingError(cut) == .truncated(.jpeg), "cut at \(fraction)")
        }
    }

    @Test("grayscale JPEG gives one channel")
    func grayscaleJPEG() throws {
        var gray = Image(width: 40, height: 24, channels: 1)
        for y in 0..<24 { for x in 0..<40 { gray[x, y, 0] = UInt8(x * 6) } }
        let jpeg = try JPEG.encode(gray, quality: 95)
        #expect(try JPEG.header(of: jpeg).colourSpace == .gray)
        let image = try ImageDecoder.decode(jpeg)
        #expect(image.channels == 1 && image.width == 40 && image.height == 24)
        #expect(meanDifference(image, gray) < 2)
    }

    @Test("CMYK (YCCK, Adobe inverted) JPEG is converted to RGB")
    func cmykJPEG() throws {
        // Inverted CMYK with K' = 255 (no black) is the RGB image itself; the right half gets
        // K' = 128 on white, a mid gray.
        let width = 48, height = 32
        var cmyk = Image(width: width, height: height, channels: 4)
        var expected = Image(width: width, height: height, channels: 3)
        for y in 0..<height {
            for x in 0..<width {
                let left = x < 24
                for c in 0..<3 {
                    let value = left ? Self.picture[x, y, c] : 255
                    cmyk[x, y, c] = value
                    expected[x, y, c] = left ? value : 128
                }
                cmyk[x, y, 3] = left ? 255 : 128
            }
        }
        let jpeg = try JPEG.encode(cmyk, quality: 95, cmyk: true)
        let header = try JPEG.header(of: jpeg)
        #expect(header.colourSpace == .ycck && header.hasAdobeMarker)
        let image = try ImageDecoder.decode(jpeg)
        #expect(image.channels == 3 && image.width == width && image.height == height)
        #expect(meanDifference(image, expected) < 4)
    }

    @Test("EXIF orientation 1–8 is applied, in both byte orders", arguments: 1...8, [true, false])
    func exifOrientation(orientation: Int, littleEndian: Bool) throws {
        // The stored image is the upright one turned by the inverse of the orientation, so that
        // applying the orientation gives the upright image back.
        let inverse = orientation == 6 ? 8 : (orientation == 8 ? 6 : orientation)
        let stored = Self.picture.applyingOrientation(inverse)
        let jpeg = try JPEG.encode(stored, quality: 95, subsampling: .s444)
        let tagged = CodecFixtures.splice(CodecFixtures.exifSegment(orientation: orientation, littleEndian: littleEndian), into: jpeg)
        #expect(try JPEG.header(of: tagged).orientation == orientation)
        let image = try ImageDecoder.decode(tagged)
        #expect(image.width == 48 && image.height == 32, "orientation \(orientation)")
        #expect(meanDifference(image, Self.picture) < 3, "orientation \(orientation)")
    }

    @Test("orientations compose as the eight symmetries of the rectangle")
    func orientationAlgebra() {
        let image = CodecFixtures.blocks(width: 5, height: 3)
        #expect(image.applyingOrientation(6).applyingOrientation(8) == image)
        #expect(image.applyingOrientation(6).applyingOrientation(6) == image.applyingOrientation(3))
        for o in [2, 3, 4, 5, 7] { #expect(image.applyingOrientation(o).applyingOrientation(o) == image, "\(o)") }
        #expect(image.applyingOrientation(6).width == 3 && image.applyingOrientation(6).height == 5)
        // 6 turns clockwise: the top-left pixel goes to the top-right corner.
        #expect(image.applyingOrientation(6)[2, 0, 0] == image[0, 0, 0])
        #expect(image.applyingOrientation(8)[0, 4, 0] == image[0, 0, 0])
        #expect(image.applyingOrientation(0) == image && image.applyingOrientation(9) == image)
    }

    @Test("garbage Exif segments never trap and leave the orientation at 1")
    func garbageExif() throws {
        var generator = SeededGenerator(seed: 5)
        let good = CodecFixtures.exifSegment(orientation: 6, littleEndian: true)
        for trial in 0..<300 {
            var segment = good
            // Damage 1–4 bytes past the marker and length, or cut the TIFF structure short.
            if trial % 3 == 0 {
                let keep = 10 + Int(generator.next() % UInt64(good.count - 10))
                segment = Array(good.prefix(keep))
                segment[2] = UInt8((keep - 2) >> 8); segment[3] = UInt8((keep - 2) & 0xFF)
            } else {
                for _ in 0...(generator.next() % 4) {
                    let at = 10 + Int(generator.next() % UInt64(good.count - 10))
                    segment[at] = UInt8(truncatingIfNeeded: generator.next())
                }
            }
            let tagged = CodecFixtures.splice(segment, into: Self.jpeg)
            let image = try ImageDecoder.decode(tagged)
            #expect([1, 2, 3, 4, 5, 6, 7, 8].contains(try JPEG.header(of: tagged).orientation))
            #expect(image.pixels.count == 48 * 32 * 3)
        }
    }

    @Test("damaged JPEGs give an error or an image, never a trap")
    func mutatedJPEGs() {
        var generator = SeededGenerator(seed: 11)
        for _ in 0..<200 {
            var bytes = Self.jpeg
            for _ in 0...(generator.next() % 6) {
                bytes[3 + Int(generator.next() % UInt64(bytes.count - 3))] = UInt8(truncatingIfNeeded: generator.next())
            }
            if let image = try? ImageDecoder.decode(bytes, maximumSamples: 1 << 20) {
                #expect(image.pixels.count == image.width * image.height * image.channels)
            }
        }
    }

    @Test("a 12-MP photo decodes at the DCT scale its needed side allows")
    func dctScaling() throws {
        let photo = CodecFixtures.blocks(width: 4032, height: 3024)
        let jpeg = try JPEG.encode(photo, quality: 85)
        // 1/4 gives 1008 ≥ 1000; 1/8 would give 504.
        let quarter = try ImageDecoder.decode(jpeg, maximumSamples: 16 << 20, maximumSide: 1000)
        #expect(quarter.width == 1008 && quarter.height == 756)
        #expect(quarter.pixels.count == 1008 * 756 * 3, "the only pixel buffer is the scaled one")
        // The limit applies to the scaled buffer: exactly its size is enough, one sample less
        // takes the decoder down to 1/8 rather than up to a larger buffer.
        let tight = try ImageDecoder.decode(jpeg, maximumSamples: 1008 * 756 * 3, maximumSide: 1000)
        #expect(tight.width == 1008 && tight.height == 756)
        let tighter = try ImageDecoder.decode(jpeg, maximumSamples: 1008 * 756 * 3 - 1, maximumSide: 1000)
        #expect(tighter.width == 504 && tighter.height == 378)
        // 1/4 would give 1008 < 1024, so 1/2.
        let half = try ImageDecoder.decode(jpeg, maximumSamples: 16 << 20, maximumSide: 1024)
        #expect(half.width == 2016 && half.height == 1512)
        // Full size needs 36.6 Mi samples: over a 16 Mi limit, refused without a needed side…
        #expect(throws: ImageDecodingError.tooLarge(width: 4032, height: 3024, channels: 3, limit: 16 << 20)) {
            try ImageDecoder.decode(jpeg, maximumSamples: 16 << 20)
        }
        // …and with a needed side the limit takes it to the first scale that fits.
        let fitted = try ImageDecoder.decode(jpeg, maximumSamples: 16 << 20, maximumSide: 4000)
        #expect(fitted.width == 2016 && fitted.height == 1512)
        let full = try ImageDecoder.decode(jpeg, maximumSamples: 64 << 20)
        #expect(full.width == 4032 && full.height == 3024)
        // The scaled decode is the full one averaged over 4 × 4 blocks, near enough.
        var sampled = Image(width: 1008, height: 756, channels: 3)
        for y in 0..<756 { for x in 0..<1008 { for c in 0..<3 { sampled[x, y, c] = photo[4 * x + 2, 4 * y + 2, c] } } }
        #expect(meanDifference(quarter, sampled) < 8)
    }

    @Test("the scale choice follows the needed side and the limit")
    func scaleChoice() {
        #expect(JPEG.scaleDenominator(width: 4032, height: 3024, channels: 3, maximumSamples: 64 << 20, maximumSide: nil) == 1)
        #expect(JPEG.scaleDenominator(width: 4032, height: 3024, channels: 3, maximumSamples: 64 << 20, maximumSide: 4032) == 1)
        #expect(JPEG.scaleDenominator(width: 4032, height: 3024, channels: 3, maximumSamples: 64 << 20, maximumSide: 2016) == 2)
        #expect(JPEG.scaleDenominator(width: 4032, height: 3024, channels: 3, maximumSamples: 64 << 20, maximumSide: 100) == 8)
        #expect(JPEG.scaleDenominator(width: 100, height: 80, channels: 3, maximumSamples: 64 << 20, maximumSide: 1024) == 1)
        #expect(JPEG.scaleDenominator(width: 60_000, height: 60_000, channels: 3, maximumSamples: 16 << 20, maximumSide: 10) == nil)
    }

    @Test("WebP lossless round trip, RGB and RGBA")
    func webpRoundTrip() throws {
        let rgb = Self.picture
        #expect(try ImageDecoder.decode(try WebP.encodeLossless(rgb)) == rgb)
        var rgba = Image(width: 16, height: 8, channels: 4)
        for i in 0..<rgba.pixels.count { rgba.pixels[i] = UInt8(truncatingIfNeeded: i * 7) }
        for p in 0..<(16 * 8) { rgba.pixels[4 * p + 3] = 255 - UInt8(p) }
        let decoded = try ImageDecoder.decode(try WebP.encodeLossless(rgba))
        #expect(decoded.channels == 4 && decoded.width == 16 && decoded.height == 8)
        #expect(decoded == rgba)
        let header = try WebP.header(of: try WebP.encodeLossless(rgba))
        #expect(header.hasAlpha && !header.isAnimated && header.width == 16)
        #expect(throws: ImageDecodingError.tooLarge(width: 48, height: 32, channels: 3, limit: 100)) {
            try ImageDecoder.decode(try WebP.encodeLossless(rgb), maximumSamples: 100)
        }
    }

    @Test("errors read clearly")
    func messages() {
        #expect(ImageDecodingError.unsupportedFormat(.gif).description == "unsupported format: GIF; send PNG, JPEG or WebP")
        #expect(ImageDecodingError.unrecognisedFormat.description == "the data is not a PNG, JPEG or WebP image")
        #expect(ImageDecodingError.truncated(.jpeg).description == "the JPEG data is truncated")
        #expect(ImageDecodingError.animated(.webp).description == "animated WebP images are not supported; send a still image")
    }
}
