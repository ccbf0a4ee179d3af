/// Builds PNG files byte by byte from the specification (RFC 2083 / ISO 15948), independently of
/// libpng: CRC-32 and Adler-32 computed here, image data in stored (uncompressed) deflate blocks,
/// filter type 0 on every row, optional Adam7 interlacing.
public struct PNGBuilder {
    public enum ColourType: UInt8 { case gray = 0, rgb = 2, palette = 3, grayAlpha = 4, rgba = 6 }

    public var width: Int
    public var height: Int
    public var bitDepth: Int
    public var colourType: ColourType
    public var interlaced = false
    /// Samples per pixel as stored: raw sample values (palette indices for palette images).
    public var samples: [Int]
    public var palette: [(UInt8, UInt8, UInt8)] = []
    public var transparency: [UInt8] = []

    public init(width: Int, height: Int, bitDepth: Int, colourType: ColourType, interlaced: Bool = false,
                samples: [Int], palette: [(UInt8, UInt8, UInt8)] = [], transparency: [UInt8] = []) {
        self.width = width
        self.height = height
        self.bitDepth = bitDepth
        self.colourType = colourType
        self.interlaced = interlaced
        self.samples = samples
        self.palette = palette
        self.transparency = transparency
    }

    public var channelsStored: Int {
        switch colourType {
        case .gray, .palette: return 1
        case .grayAlpha: return 2
        case .rgb: return 3
        case .rgba: return 4
        }
    }

    public static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }

    public static func bigEndian(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8(truncatingIfNeeded: value >> 16), UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value)]
    }

    public static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        return bigEndian(UInt32(data.count)) + body + bigEndian(crc32(body))
    }

    /// A zlib stream (RFC 1950) of stored deflate blocks (RFC 1951 §3.2.4).
    public static func zlibStored(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x78, 0x01]
        var offset = 0
        repeat {
            let length = min(65535, data.count - offset)
            let final: UInt8 = offset + length == data.count ? 1 : 0
            out += [final, UInt8(length & 0xFF), UInt8(length >> 8), UInt8(~length & 0xFF), UInt8((~length >> 8) & 0xFF)]
            out += data[offset..<(offset + length)]
            offset += length
        } while offset < data.count
        var a: UInt32 = 1, b: UInt32 = 0
        for byte in data { a = (a + UInt32(byte)) % 65521; b = (b + a) % 65521 }
        return out + bigEndian(b << 16 | a)
    }

    /// The serialised scanlines of the pixels at `xs × ys`, each row prefixed by filter byte 0.
    public func scanlines(xs: [Int], ys: [Int]) -> [UInt8] {
        guard !xs.isEmpty, !ys.isEmpty, !samples.isEmpty else { return [] }
        var out: [UInt8] = []
        for y in ys {
            out.append(0)
            var row: [UInt8] = []
            var accumulator = 0, filled = 0
            for x in xs {
                for c in 0..<channelsStored {
                    let value = samples[(y * width + x) * channelsStored + c]
                    if bitDepth == 16 {
                        row += [UInt8(value >> 8), UInt8(value & 0xFF)]
                    } else if bitDepth == 8 {
                        row.append(UInt8(value))
                    } else {
                        accumulator = accumulator << bitDepth | value
                        filled += bitDepth
                        if filled == 8 { row.append(UInt8(accumulator)); accumulator = 0; filled = 0 }
                    }
                }
            }
            if filled > 0 { row.append(UInt8(accumulator << (8 - filled))) }
            out += row
        }
        return out
    }

    public func bytes() -> [UInt8] {
        var ihdr = Self.bigEndian(UInt32(width)) + Self.bigEndian(UInt32(height))
        ihdr += [UInt8(bitDepth), colourType.rawValue, 0, 0, interlaced ? 1 : 0]
        var raw: [UInt8] = []
        if interlaced {
            let passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
            for (x0, y0, dx, dy) in passes {
                raw += scanlines(xs: Array(stride(from: x0, to: width, by: dx)), ys: Array(stride(from: y0, to: height, by: dy)))
            }
        } else {
            raw = scanlines(xs: Array(0..<width), ys: Array(0..<height))
        }
        var file: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        file += Self.chunk("IHDR", ihdr)
        if !palette.isEmpty { file += Self.chunk("PLTE", palette.flatMap { [$0.0, $0.1, $0.2] }) }
        if !transparency.isEmpty { file += Self.chunk("tRNS", transparency) }
        file += Self.chunk("IDAT", Self.zlibStored(raw))
        file += Self.chunk("IEND", [])
        return file
    }
}
