import CTurboJPEG

/// JPEG decoding and encoding through libjpeg-turbo's TurboJPEG API.
public enum JPEG {
    /// The colour space of the JPEG's components.
    public enum ColourSpace: String, Equatable, Sendable {
        case gray, yCbCr, rgb, cmyk, ycck
    }

    /// What the header says, read before any pixel memory is allocated.
    public struct Header: Equatable, Sendable {
        /// Stored size, before EXIF orientation.
        public var width: Int
        public var height: Int
        public var colourSpace: ColourSpace
        /// TurboJPEG's subsampling (`TJSAMP_444` = 0, `TJSAMP_422`, `TJSAMP_420`, `TJSAMP_GRAY`,
        /// `TJSAMP_440`, `TJSAMP_411`), or -1 when it is none of those.
        public var subsampling: Int
        /// Whether the frame is progressive (SOF2/SOF6/SOF10/SOF14).
        public var isProgressive: Bool
        /// The EXIF orientation, 1–8 (1 when there is none or it is invalid).
        public var orientation: Int
        /// Whether an Adobe APP14 segment is present (its CMYK samples are stored inverted).
        public var hasAdobeMarker: Bool

        /// Channels of the decoded image: 1 for gray, 3 for everything else (CMYK becomes RGB).
        public var channels: Int { colourSpace == .gray ? 1 : 3 }
    }

    /// The DCT-domain scale denominators the decoder chooses from (libjpeg-turbo has fast reduced
    /// inverse DCTs for these).
    public static let scaleDenominators = [1, 2, 4, 8]

    /// `ceil(dimension / denominator)`, libjpeg's size of a dimension decoded at `1/denominator`.
    public static func scaled(_ dimension: Int, by denominator: Int) -> Int {
        (dimension + denominator - 1) / denominator
    }

    /// The most samples of the DCT coefficient buffer of a progressive JPEG, as a multiple of the
    /// pixel limit: libjpeg keeps every coefficient of a multi-scan image at full resolution
    /// whatever the output scale, so this bounds that buffer (2 bytes a coefficient).
    public static let progressiveCoefficientFactor = 4

    private static func message(_ handle: tjhandle?) -> String {
        guard let text = tjGetErrorStr2(handle) else { return "unknown error" }
        return String(cString: text)
    }

    private static func isTruncation(_ message: String) -> Bool {
        message.lowercased().contains("premature end")
    }

    /// Whether the last failure is libjpeg's warning about extraneous bytes before a marker,
    /// after which it decodes the rest normally.
    private static func isBenignWarning(_ handle: tjhandle) -> Bool {
        tjGetErrorCode(handle) == Int32(TJERR_WARNING.rawValue) && message(handle).contains("extraneous bytes")
    }

    /// Whether an end-of-image marker lies among the last bytes (writers may pad after it).
    private static func endsWithEndOfImage(_ bytes: [UInt8]) -> Bool {
        let tail = bytes.suffix(64)
        return zip(tail, tail.dropFirst()).contains { $0 == 0xFF && $1 == 0xD9 }
    }

    /// Reads the header: size, colour space, subsampling and, from the markers, progressive
    /// coding, EXIF orientation and the Adobe marker.
    /// - Throws: `.truncated(.jpeg)` or `.corrupt(.jpeg, message)`.
    public static func header(of bytes: [UInt8]) throws(ImageDecodingError) -> Header {
        guard bytes.count >= 3, bytes[0] == 0xFF, bytes[1] == 0xD8, bytes[2] == 0xFF else {
            throw .corrupt(.jpeg, "no JPEG start-of-image marker")
        }
        guard let handle = tjInitDecompress() else { throw .corrupt(.jpeg, "cannot start the JPEG decoder") }
        defer { tjDestroy(handle) }
        var width: Int32 = 0, height: Int32 = 0, subsampling: Int32 = 0, colourSpace: Int32 = 0
        let status = bytes.withUnsafeBufferPointer { buffer in
            tjDecompressHeader3(handle, buffer.baseAddress, UInt(buffer.count), &width, &height, &subsampling, &colourSpace)
        }
        let markers = JPEGMarkers(bytes)
        guard status == 0 || isBenignWarning(handle) else {
            let text = message(handle)
            if isTruncation(text) || markers.endedEarly { throw .truncated(.jpeg) }
            throw .corrupt(.jpeg, text)
        }
        guard width > 0, height > 0 else {
            if markers.endedEarly { throw .truncated(.jpeg) }
            throw .corrupt(.jpeg, "no frame header before the end of the data")
        }
        let space: ColourSpace
        switch UInt32(colourSpace) {
        case TJCS_GRAY.rawValue: space = .gray
        case TJCS_RGB.rawValue: space = .rgb
        case TJCS_CMYK.rawValue: space = .cmyk
        case TJCS_YCCK.rawValue: space = .ycck
        default: space = .yCbCr
        }
        return Header(width: Int(width), height: Int(height), colourSpace: space, subsampling: Int(subsampling),
                      isProgressive: markers.isProgressive, orientation: markers.orientation ?? 1,
                      hasAdobeMarker: markers.hasAdobeMarker)
    }

    /// The denominator ``decode(_:maximumSamples:maximumSide:)`` decodes at: the largest in
    /// ``scaleDenominators`` whose long side stays at least `maximumSide`; when that still exceeds
    /// `maximumSamples`, the first larger denominator that fits; `nil` when even 1/8 does not fit.
    /// Without `maximumSide` only full size is considered.
    public static func scaleDenominator(width: Int, height: Int, channels: Int, maximumSamples: Int,
                                        maximumSide: Int?) -> Int? {
        func samples(_ d: Int) -> Int {
            let (area, o1) = scaled(width, by: d).multipliedReportingOverflow(by: scaled(height, by: d))
            let (total, o2) = area.multipliedReportingOverflow(by: channels)
            return o1 || o2 ? .max : total
        }
        guard let maximumSide else { return samples(1) <= maximumSamples ? 1 : nil }
        let longSide = max(width, height)
        let enough = scaleDenominators.last { scaled(longSide, by: $0) >= maximumSide } ?? 1
        return scaleDenominators.first { $0 >= enough && samples($0) <= maximumSamples }
    }

    /// Decodes JPEG data into an upright 8-bit image.
    ///
    /// The header is read first (size, colour space, subsampling, markers) and the working size is
    /// decided on it before any pixel buffer is allocated: with `maximumSide`, a photo far larger
    /// than needed is decoded at the smallest DCT scale (1/2, 1/4 or 1/8, see
    /// ``scaleDenominator(width:height:channels:maximumSamples:maximumSide:)``) whose long side is
    /// still `maximumSide` or more, so a 12-MP photo needs a few MB, not 36. A progressive image
    /// whose full-size coefficients exceed ``progressiveCoefficientFactor`` × `maximumSamples` is
    /// refused as well, since scaling does not shrink them.
    ///
    /// Gray JPEGs give 1 channel, YCbCr and RGB ones 3. CMYK and YCCK ones are converted to RGB
    /// with `R = (1 − C)(1 − K)` and so on; with an Adobe APP14 marker (Photoshop's and
    /// libjpeg's own CMYK writers) the stored samples are inverted and `R = C·K` is used.
    /// The EXIF orientation (APP1 `Exif`, IFD0 tag 0x0112) is applied, so orientations 5–8 swap
    /// the sides. A libjpeg warning about premature end of data, or any warning on data without a
    /// final end-of-image marker, is a truncated file and refused; a warning about extraneous
    /// bytes before a marker (common in camera files) keeps the decoded image; any other warning
    /// (a bogus table between progressive scans, …) is a corrupt file, since the pixels may be
    /// incomplete.
    /// - Throws: `.tooLarge`, `.truncated(.jpeg)`, `.corrupt(.jpeg, message)`.
    public static func decode(_ bytes: [UInt8], maximumSamples: Int = PNG.defaultMaximumSamples,
                              maximumSide: Int? = nil) throws(ImageDecodingError) -> Image {
        let header = try header(of: bytes)
        let isCMYK = header.colourSpace == .cmyk || header.colourSpace == .ycck
        let decodedChannels = header.colourSpace == .gray ? 1 : (isCMYK ? 4 : 3)
        guard header.width > 0, header.height > 0 else { throw .corrupt(.jpeg, "empty image") }
        if header.isProgressive {
            let (area, overflow1) = header.width.multipliedReportingOverflow(by: header.height)
            let (coefficients, overflow2) = area.multipliedReportingOverflow(by: decodedChannels)
            let (budget, overflow3) = maximumSamples.multipliedReportingOverflow(by: progressiveCoefficientFactor)
            if overflow1 || overflow2 || (!overflow3 && coefficients > budget) {
                throw .tooLarge(width: header.width, height: header.height, channels: header.channels,
                                limit: overflow3 ? .max : budget)
            }
        }
        guard let denominator = scaleDenominator(width: header.width, height: header.height, channels: decodedChannels,
                                                 maximumSamples: maximumSamples, maximumSide: maximumSide) else {
            let d = maximumSide == nil ? 1 : scaleDenominators.last!
            throw .tooLarge(width: scaled(header.width, by: d), height: scaled(header.height, by: d),
                            channels: header.channels, limit: maximumSamples)
        }
        let width = scaled(header.width, by: denominator), height = scaled(header.height, by: denominator)
        guard let handle = tjInitDecompress() else { throw .corrupt(.jpeg, "cannot start the JPEG decoder") }
        defer { tjDestroy(handle) }
        let format = header.colourSpace == .gray ? TJPF_GRAY : (isCMYK ? TJPF_CMYK : TJPF_RGB)
        var pixels = [UInt8](repeating: 0, count: width * height * decodedChannels)
        let status = bytes.withUnsafeBufferPointer { source in
            pixels.withUnsafeMutableBufferPointer { target in
                tjDecompress2(handle, source.baseAddress, UInt(source.count), target.baseAddress,
                              Int32(width), Int32(width * decodedChannels), Int32(height),
                              Int32(format.rawValue), TJFLAG_LIMITSCANS)
            }
        }
        if status != 0 {
            let text = message(handle)
            if isTruncation(text) || !endsWithEndOfImage(bytes) { throw .truncated(.jpeg) }
            if !isBenignWarning(handle) { throw .corrupt(.jpeg, text) }
        }
        if isCMYK { pixels = rgb(fromCMYK: pixels, inverted: header.hasAdobeMarker) }
        let image = Image(width: width, height: height, channels: header.channels, pixels: pixels)
        return image.applyingOrientation(header.orientation)
    }

    /// RGB from packed CMYK samples, inverted (Adobe) or not.
    static func rgb(fromCMYK cmyk: [UInt8], inverted: Bool) -> [UInt8] {
        let count = cmyk.count / 4
        var rgb = [UInt8](repeating: 0, count: count * 3)
        cmyk.withUnsafeBufferPointer { source in
            rgb.withUnsafeMutableBufferPointer { target in
                for p in 0..<count {
                    let k = UInt32(inverted ? source[4 * p + 3] : 255 - source[4 * p + 3])
                    for c in 0..<3 {
                        let ink = UInt32(inverted ? source[4 * p + c] : 255 - source[4 * p + c])
                        target[3 * p + c] = UInt8((ink * k + 127) / 255)
                    }
                }
            }
        }
        return rgb
    }

    /// Chroma subsampling of an encoded JPEG.
    public enum Subsampling: Sendable {
        case s444, s422, s420, gray

        var turbo: Int32 {
            switch self {
            case .s444: Int32(TJSAMP_444.rawValue)
            case .s422: Int32(TJSAMP_422.rawValue)
            case .s420: Int32(TJSAMP_420.rawValue)
            case .gray: Int32(TJSAMP_GRAY.rawValue)
            }
        }
    }

    /// Encodes an image as JPEG.
    ///
    /// Gray images are written as gray JPEGs whatever `subsampling` says; RGBA loses its alpha.
    /// With `cmyk`, a 4-channel image is taken as inverted CMYK samples (Adobe's convention, as
    /// ``decode(_:maximumSamples:maximumSide:)`` reads them) and written as a YCCK JPEG with an
    /// Adobe marker.
    /// - Throws: `.corrupt(.jpeg, message)` with TurboJPEG's message.
    public static func encode(_ image: Image, quality: Int = 90, subsampling: Subsampling = .s420,
                              progressive: Bool = false, cmyk: Bool = false) throws(ImageDecodingError) -> [UInt8] {
        guard image.width > 0, image.height > 0 else { throw .corrupt(.jpeg, "image has no pixels") }
        var source = image.pixels, channels = image.channels
        let format: TJPF
        if cmyk {
            guard image.channels == 4 else { throw .corrupt(.jpeg, "CMYK encoding needs 4 channels") }
            format = TJPF_CMYK
        } else if image.channels == 4 {
            source = (0..<(image.width * image.height)).flatMap { p in image.pixels[(4 * p)..<(4 * p + 3)] }
            channels = 3
            format = TJPF_RGB
        } else {
            format = image.channels == 1 ? TJPF_GRAY : TJPF_RGB
        }
        let sampling = image.channels == 1 ? Subsampling.gray : (subsampling == .gray ? .s444 : subsampling)
        guard let handle = tjInitCompress() else { throw .corrupt(.jpeg, "cannot start the JPEG encoder") }
        defer { tjDestroy(handle) }
        var output: UnsafeMutablePointer<UInt8>? = nil
        var size: UInt = 0
        let flags = progressive ? TJFLAG_PROGRESSIVE : 0
        let status = source.withUnsafeBufferPointer { pixels in
            tjCompress2(handle, pixels.baseAddress, Int32(image.width), Int32(image.width * channels), Int32(image.height),
                        Int32(format.rawValue), &output, &size, sampling.turbo, Int32(min(max(quality, 1), 100)), flags)
        }
        defer { tjFree(output) }
        guard status == 0, let output else { throw .corrupt(.jpeg, message(handle)) }
        return Array(UnsafeBufferPointer(start: output, count: Int(size)))
    }
}

/// What the JPEG markers before the first scan say: frame type, EXIF orientation, Adobe marker.
///
/// The walk is bounds-checked throughout and stops at the first inconsistency; garbage never
/// traps, it only yields fewer facts.
struct JPEGMarkers {
    var isProgressive = false
    var orientation: Int?
    var hasAdobeMarker = false
    /// Whether the data ended inside the header segments, before any start-of-scan marker.
    var endedEarly = false

    init(_ bytes: [UInt8]) {
        var position = 2
        while position + 4 <= bytes.count {
            guard bytes[position] == 0xFF else { return }
            let marker = bytes[position + 1]
            if marker == 0xFF { position += 1; continue }                      // fill byte
            if marker == 0x01 || (0xD0...0xD8).contains(marker) { position += 2; continue }
            if marker == 0xD9 { return }
            if marker == 0xDA { return }
            let length = Int(bytes[position + 2]) << 8 | Int(bytes[position + 3])
            guard length >= 2 else { return }
            guard position + 2 + length <= bytes.count else { endedEarly = true; return }
            let body = bytes[(position + 4)..<(position + 2 + length)]
            switch marker {
            case 0xC2, 0xC6, 0xCA, 0xCE:
                isProgressive = true
            case 0xE1 where orientation == nil && body.starts(with: [0x45, 0x78, 0x69, 0x66, 0, 0]):
                orientation = Exif.orientation(tiff: Array(body.dropFirst(6)))
            case 0xEE where body.starts(with: Array("Adobe".utf8)):
                hasAdobeMarker = true
            default:
                break
            }
            position += 2 + length
        }
        endedEarly = true
    }
}

/// The orientation tag of an EXIF TIFF structure.
enum Exif {
    /// Tag 0x0112 of IFD0 of `tiff` (the APP1 body after `Exif\0\0`), when it is a SHORT (or
    /// LONG) in 1...8; `nil` for anything else. Both byte orders; every read is bounds-checked.
    static func orientation(tiff: [UInt8]) -> Int? {
        guard tiff.count >= 8 else { return nil }
        let little: Bool
        switch (tiff[0], tiff[1]) {
        case (0x49, 0x49): little = true
        case (0x4D, 0x4D): little = false
        default: return nil
        }
        func u16(_ offset: Int) -> Int? {
            guard offset >= 0, offset + 2 <= tiff.count else { return nil }
            let a = Int(tiff[offset]), b = Int(tiff[offset + 1])
            return little ? a | b << 8 : a << 8 | b
        }
        func u32(_ offset: Int) -> Int? {
            guard let high = u16(little ? offset + 2 : offset), let low = u16(little ? offset : offset + 2) else { return nil }
            return high << 16 | low
        }
        guard u16(2) == 42, let ifd = u32(4), let count = u16(ifd) else { return nil }
        for entry in 0..<count {
            let base = ifd + 2 + 12 * entry
            guard let tag = u16(base), let type = u16(base + 2), let values = u32(base + 4) else { return nil }
            guard tag == 0x0112 else { continue }
            guard values >= 1 else { return nil }
            let value: Int?
            switch type {
            case 3: value = u16(base + 8)
            case 4: value = u32(base + 8)
            default: value = nil
            }
            guard let value, (1...8).contains(value) else { return nil }
            return value
        }
        return nil
    }
}

extension Image {
    /// The image as it is meant to be seen when stored with EXIF `orientation` (1–8): 2 mirrors
    /// left–right, 3 turns 180°, 4 mirrors top–bottom, 5 transposes, 6 turns 90° clockwise,
    /// 7 transverses, 8 turns 90° counter-clockwise. Any other value leaves the image unchanged.
    public func applyingOrientation(_ orientation: Int) -> Image {
        guard (2...8).contains(orientation) else { return self }
        let w = width, h = height, c = channels
        let swaps = orientation >= 5
        let outWidth = swaps ? h : w, outHeight = swaps ? w : h
        var out = [UInt8](repeating: 0, count: pixels.count)
        pixels.withUnsafeBufferPointer { source in
            out.withUnsafeMutableBufferPointer { target in
                for y in 0..<outHeight {
                    for x in 0..<outWidth {
                        let (sx, sy): (Int, Int)
                        switch orientation {
                        case 2: (sx, sy) = (w - 1 - x, y)
                        case 3: (sx, sy) = (w - 1 - x, h - 1 - y)
                        case 4: (sx, sy) = (x, h - 1 - y)
                        case 5: (sx, sy) = (y, x)
                        case 6: (sx, sy) = (y, h - 1 - x)
                        case 7: (sx, sy) = (w - 1 - y, h - 1 - x)
                        default: (sx, sy) = (w - 1 - y, x)
                        }
                        let from = (sy * w + sx) * c, to = (y * outWidth + x) * c
                        for k in 0..<c { target[to + k] = source[from + k] }
                    }
                }
            }
        }
        return Image(width: outWidth, height: outHeight, channels: c, pixels: out)
    }
}
