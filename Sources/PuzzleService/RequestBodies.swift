import Foundation
import HTTPCore
import Jigsaw

/// The JSON body of `POST /v1/solve`: either `pieces` or `image`.
struct SolveRequestBody: Decodable {
    var pieces: [PieceInput]?
    /// A whole scrambled image as a base64 PNG, JPEG or WebP.
    var image: String?
    var model: String?
    var tau: Double?
    var iterations: WholeNumber?
}

/// One piece of a piece list: a base64 PNG, or numbers in [0, 1] as `[H][W]` (gray) or
/// `[C][H][W]` (C = 1 or 3, channels first like the network's tensors).
enum PieceInput: Decodable {
    case png(String)
    case plane([[Double]])
    case planes([[[Double]]])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self) {
            self = .png(text)
        } else if let plane = try? container.decode([[Double]].self) {
            self = .plane(plane)
        } else if let planes = try? container.decode([[[Double]]].self) {
            self = .planes(planes)
        } else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "a piece is a base64 PNG string or a nested array [H][W] or [C][H][W] of numbers in [0, 1]")
        }
    }
}

/// The JSON body of `POST /v1/sort`.
struct SortRequestBody: Decodable {
    var numbers: [Double]
    var model: String?
    var tau: Double?
    var iterations: WholeNumber?
}

/// Reading request content: media types, JSON, base64 images and number arrays.
enum RequestContent {
    /// The kinds of content a route can take: an image (PNG, JPEG or WebP) or JSON.
    enum Kind { case image, json }

    /// The image media types a route taking images lists.
    static let imageMediaTypes = ["image/png", "image/jpeg", "image/webp"]

    /// The longest side an uploaded photo is decoded at when it is larger: puzzles are cut from
    /// it and shown at `ServiceConfiguration.displaySize`, so more pixels only cost memory.
    /// JPEGs are decoded at the DCT scale that keeps at least this side.
    static let decodedSide = 1024

    /// The side kept when a photo is only solved, not returned: the reconstruction is shown at
    /// `displaySize` at most and every model's image is smaller still, so decoding at the DCT
    /// scale that keeps this side loses nothing the answer uses.
    static func solvedSide(displaySize: Int) -> Int { max(displaySize, 512) }

    /// What the content is: by `Content-Type`, or for a missing or generic type by its first bytes.
    ///
    /// Any `image/*` type (and a missing or generic type whose bytes are a recognised image
    /// format) is an image; the image decoder then goes by the magic bytes alone, so a JPEG sent
    /// as `image/png` decodes as the JPEG it is, and a GIF gets the decoder's 415
    /// `unsupported_image_format` naming it rather than a generic media-type refusal.
    /// - Throws: `empty_body`, `unsupported_media_type`.
    static func kind(of request: HTTPRequest, accepting accepted: [Kind]) throws(ServiceError) -> Kind {
        guard !request.body.isEmpty else { throw .emptyBody }
        let mediaType = (request.headers["Content-Type"] ?? "").split(separator: ";").first
            .map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        let names = accepted.flatMap { $0 == .image ? imageMediaTypes : ["application/json"] }
        let kind: Kind?
        switch mediaType {
        case _ where mediaType.hasPrefix("image/"): kind = .image
        case "application/json": kind = .json
        case _ where mediaType.hasSuffix("+json"): kind = .json
        // curl's --data-binary sends form-urlencoded unless told otherwise: judge by content.
        case "", "application/octet-stream", "application/x-www-form-urlencoded":
            if ImageFormat.sniff(request.body) != nil {
                kind = .image
            } else if request.body.first(where: { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }) == UInt8(ascii: "{") {
                kind = .json
            } else {
                kind = nil
            }
        default: kind = nil
        }
        guard let kind, accepted.contains(kind) else {
            throw .unsupportedMediaType(found: mediaType.isEmpty ? "(none)" : mediaType, accepted: names)
        }
        return kind
    }

    /// Decodes a JSON body, with a short message naming the field at fault. The body is first
    /// checked by ``JSONCheck`` (syntax with its byte offset, duplicate member names, numbers
    /// beyond float64).
    static func decode<Body: Decodable>(_ type: Body.Type, from bytes: [UInt8]) throws(ServiceError) -> Body {
        try JSONCheck.check(bytes)
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch let error as DecodingError {
            throw .invalidJSON(describe(error))
        } catch {
            throw .invalidJSON(String(describing: error))
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ codingPath: [any CodingKey]) -> String {
            let text = codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return text.isEmpty ? "the body" : String(text.drop { $0 == "." })
        }
        switch error {
        case .typeMismatch(let type, let context): return "\(path(context.codingPath)): expected \(type)"
        case .valueNotFound(let type, let context): return "\(path(context.codingPath)): expected \(type), found null"
        case .keyNotFound(let key, let context): return "\(path(context.codingPath + [key])) is required"
        case .dataCorrupted(let context):
            let underlying = (context.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
            return "\(path(context.codingPath)): \(underlying ?? context.debugDescription)"
        @unknown default: return String(describing: error)
        }
    }

    /// Decodes a base64 string (optionally a `data:image/png;base64,` URL) into bytes.
    static func base64(_ text: String, field: String) throws(ServiceError) -> [UInt8] {
        var payload = Substring(text)
        if payload.hasPrefix("data:"), let comma = payload.firstIndex(of: ",") {
            payload = payload[payload.index(after: comma)...]
        }
        guard let data = Data(base64Encoded: String(payload), options: .ignoreUnknownCharacters), !data.isEmpty else {
            throw .invalidImage("\(field) is not valid base64")
        }
        return [UInt8](data)
    }

    /// An 8-bit image from numbers in [0, 1] laid out `[C][H][W]`.
    /// - Throws: `unprocessable_input` for ragged arrays, a channel count other than 1 or 3, or
    ///   values outside [0, 1].
    static func image(planes: [[[Double]]], field: String) throws(ServiceError) -> Image {
        let channels = planes.count
        guard channels == 1 || channels == 3 else {
            throw .unprocessableInput("\(field) has \(channels) channels; a piece array is [H][W] or [C][H][W] with C = 1 or 3")
        }
        let height = planes[0].count, width = planes[0].first?.count ?? 0
        guard height > 0, width > 0 else { throw .unprocessableInput("\(field) is empty") }
        var pixels = [UInt8](repeating: 0, count: channels * height * width)
        for (c, plane) in planes.enumerated() {
            guard plane.count == height else { throw .unprocessableInput("\(field) is not rectangular: its planes have different heights") }
            for (y, row) in plane.enumerated() {
                guard row.count == width else { throw .unprocessableInput("\(field) is not rectangular: row \(y) has \(row.count) values, expected \(width)") }
                for (x, value) in row.enumerated() {
                    guard value >= 0, value <= 1 else {
                        throw .unprocessableInput("\(field) has value \(value) at [\(c)][\(y)][\(x)]; values must be in [0, 1]")
                    }
                    pixels[(y * width + x) * channels + c] = UInt8((value * 255).rounded())
                }
            }
        }
        return Image(width: width, height: height, channels: channels, pixels: pixels)
    }

    /// Decodes PNG, JPEG or WebP bytes (by their magic bytes) under the sample limit, large
    /// JPEGs at a reduced DCT scale (see ``decodedSide``).
    static func decodeImage(_ bytes: [UInt8], maximumSamples: Int, keeping side: Int = decodedSide) throws(ServiceError) -> Image {
        do {
            return try ImageDecoder.decode(bytes, maximumSamples: maximumSamples, maximumSide: side)
        } catch {
            throw ServiceError.wrapping(error)
        }
    }
}

/// Query parameter parsing with the service's error messages.
extension HTTPRequest {
    /// A positive finite temperature from the query or `fallback`.
    func temperature(_ jsonValue: Double? = nil, default fallback: Float?) throws(ServiceError) -> Float? {
        let text: String
        if let jsonValue {
            text = String(jsonValue)
            guard jsonValue.isFinite, jsonValue > 0, Float(jsonValue).isFinite, Float(jsonValue) > 0 else {
                throw .invalidParameter(name: "tau", value: text, reason: "must be a positive finite number representable as float32")
            }
            return Float(jsonValue)
        }
        guard let query = queryParameters["tau"] else { return fallback }
        text = query
        guard let value = Float(text.trimmingCharacters(in: .whitespaces)), value.isFinite, value > 0 else {
            throw .invalidParameter(name: "tau", value: text, reason: "must be a positive finite number")
        }
        return value
    }

    /// Sinkhorn iterations from JSON, the query or the default, within `1...maximum`.
    func iterations(_ jsonValue: Int? = nil, default fallback: Int, maximum: Int) throws(ServiceError) -> Int {
        let value: Int
        if let jsonValue {
            value = jsonValue
        } else if let text = queryParameters["iterations"] {
            guard let parsed = Int(text.trimmingCharacters(in: .whitespaces)) else {
                throw .invalidParameter(name: "iterations", value: text, reason: "must be an integer in 1...\(maximum)")
            }
            value = parsed
        } else {
            return fallback
        }
        guard (1...maximum).contains(value) else {
            throw .invalidParameter(name: "iterations", value: String(value), reason: "must be an integer in 1...\(maximum)")
        }
        return value
    }

    /// An integer query parameter within `range`, or `nil` when absent.
    func integer(_ name: String, in range: ClosedRange<Int>) throws(ServiceError) -> Int? {
        guard let text = queryParameters[name] else { return nil }
        guard let value = Int(text.trimmingCharacters(in: .whitespaces)), range.contains(value) else {
            throw .invalidParameter(name: name, value: text, reason: "must be an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return value
    }

    /// A 64-bit seed from the query, or `nil` when absent.
    func seed() throws(ServiceError) -> UInt64? {
        guard let text = queryParameters["seed"] else { return nil }
        guard let value = UInt64(text.trimmingCharacters(in: .whitespaces)), value <= JigsawService.maximumSeed else {
            throw .invalidParameter(name: "seed", value: String(text.prefix(64)),
                                    reason: "must be an integer in 0...\(JigsawService.maximumSeed)")
        }
        return value
    }

    /// Whether the response should be a PNG: `format=png|json` wins, else an `Accept` header that
    /// names `image/png` and not `application/json`.
    /// `?reconstruction=png|jpeg|auto` (default `auto`): the encoding of the JSON answer's
    /// reconstruction.
    /// - Throws: `invalid_parameter` for another value.
    func reconstructionFormat() throws(ServiceError) -> ReconstructionFormat {
        guard let text = queryParameters["reconstruction"] else { return .automatic }
        switch text.lowercased() {
        case "auto": return .automatic
        case "png": return .png
        case "jpeg", "jpg": return .jpeg
        default: throw .invalidParameter(name: "reconstruction", value: text, reason: "must be png, jpeg or auto")
        }
    }

    func wantsPNG(defaultPNG: Bool = false) throws(ServiceError) -> Bool {
        if let format = queryParameters["format"] {
            switch format.lowercased() {
            case "png": return true
            case "json": return false
            default: throw .invalidParameter(name: "format", value: format, reason: "must be png or json")
            }
        }
        let accepted = headers.tokens(for: "Accept").map { $0.split(separator: ";").first.map(String.init) ?? $0 }
            .map { $0.trimmingCharacters(in: .whitespaces) }
        if accepted.contains("image/png") && !accepted.contains("application/json") { return true }
        if accepted.contains("application/json") { return false }
        return defaultPNG
    }
}
