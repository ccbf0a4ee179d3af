import Foundation
import HTTPCore
import Jigsaw
import NeuralNet
import Permutations
import TensorKit

/// Why the service refuses a request: each case has a stable machine-readable `code`, a status
/// and a message a client can show.
///
/// Handlers throw only this type (library errors are translated by ``ServiceError/wrapping(_:)``),
/// so every failure leaves as `{"error": {"code": ..., "message": ...}}` with the status below.
public enum ServiceError: Error, Sendable, Equatable, HTTPStatusConvertible, CustomStringConvertible {
    /// A query parameter or JSON field has a value outside its domain. → 400 `invalid_parameter`
    case invalidParameter(name: String, value: String, reason: String)
    /// The body is not the JSON the route expects. → 400 `invalid_json`
    case invalidJSON(String)
    /// The request has no content where the route needs some. → 400 `empty_body`
    case emptyBody
    /// The uploaded data is no image, or a corrupt or truncated PNG, JPEG or WebP. → 400 `invalid_image`
    case invalidImage(String)
    /// An image whose declared size exceeds the decode limit; refused before its pixels are
    /// allocated. → 413 `image_too_large`
    case imageTooLarge(width: Int, height: Int, channels: Int, limit: Int)
    /// The content type is none of those the route accepts. → 415 `unsupported_media_type`
    case unsupportedMediaType(found: String, accepted: [String])
    /// An image in a format recognised by its magic bytes but not decoded (GIF, BMP, TIFF, HEIC,
    /// …); the message names it. → 415 `unsupported_image_format`
    case unsupportedImageFormat(String)
    /// Well-formed input that cannot make a puzzle or list for the chosen model (wrong piece
    /// count, pieces of different sizes, values out of range, an image smaller than the grid).
    /// → 422 `unprocessable_input`
    case unprocessableInput(String)
    /// The network's scores or a Sinkhorn step produced non-finite numbers. → 422 `numerical_failure`
    case numericalFailure(String)
    /// No loaded model has that name. → 404 `model_not_found`
    case modelNotFound(name: String, available: [String])
    /// The named model exists but solves another kind of problem. → 422 `wrong_model_kind`
    case wrongModelKind(name: String, expected: String)
    /// No model of the needed kind is loaded. → 503 `no_model`
    case noModel(kind: String)
    /// The heavy-work queue is full, or a request waited in it longer than its deadline.
    case overloaded(reason: String, retryAfter: Int)
    /// The client closed its connection before its request's work started.
    case clientClosed
    /// The model is loaded but cannot serve: its network produced unusable scores from finite input
    /// (it is then reported unready), or its scores do not fit the server's settings. A fault of the
    /// server, not of the request. → 503 `model_unavailable`
    case modelUnavailable(name: String, reason: String)
    /// No stored puzzle has that id (never stored, expired or evicted). → 404 `puzzle_not_found`
    case puzzleNotFound(id: String)
    /// The sample index or dataset does not exist. → 404 `sample_not_found`
    case sampleNotFound(String)
    /// The puzzle store (Redis) is down or too slow; the request may be retried.
    /// → 503 `store_unavailable` with `Retry-After`
    case storeUnavailable(store: String, reason: String)

    public var status: HTTPStatus {
        switch self {
        case .invalidParameter, .invalidJSON, .emptyBody, .invalidImage: .badRequest
        case .imageTooLarge: .contentTooLarge
        case .unsupportedMediaType, .unsupportedImageFormat: .unsupportedMediaType
        case .unprocessableInput, .numericalFailure, .wrongModelKind: .unprocessableContent
        case .modelNotFound, .puzzleNotFound, .sampleNotFound: .notFound
        case .noModel, .overloaded, .clientClosed, .storeUnavailable, .modelUnavailable: .serviceUnavailable
        }
    }

    /// The stable error code of the JSON body.
    public var code: String {
        switch self {
        case .invalidParameter: "invalid_parameter"
        case .invalidJSON: "invalid_json"
        case .emptyBody: "empty_body"
        case .invalidImage: "invalid_image"
        case .imageTooLarge: "image_too_large"
        case .unsupportedMediaType: "unsupported_media_type"
        case .unsupportedImageFormat: "unsupported_image_format"
        case .unprocessableInput: "unprocessable_input"
        case .numericalFailure: "numerical_failure"
        case .modelNotFound: "model_not_found"
        case .wrongModelKind: "wrong_model_kind"
        case .noModel: "no_model"
        case .overloaded: "overloaded"
        case .clientClosed: "client_closed"
        case .modelUnavailable: "model_unavailable"
        case .puzzleNotFound: "puzzle_not_found"
        case .sampleNotFound: "sample_not_found"
        case .storeUnavailable: "store_unavailable"
        }
    }

    public var description: String {
        switch self {
        case .invalidParameter(let name, let value, let reason): "invalid \(Self.excerpt(name)) '\(Self.excerpt(value))': \(reason)"
        case .invalidJSON(let message): "invalid JSON body: \(message)"
        case .emptyBody: "the request has no content"
        case .invalidImage(let message): message
        case .imageTooLarge(let width, let height, let channels, let limit):
            "image of \(width)×\(height)×\(channels) samples exceeds the limit of \(limit) samples"
        case .unsupportedMediaType(let found, let accepted):
            "content type '\(Self.excerpt(found))' is not supported; send one of \(accepted.joined(separator: ", "))"
        case .unsupportedImageFormat(let message): message
        case .unprocessableInput(let message): message
        case .numericalFailure(let message): message
        case .modelNotFound(let name, let available):
            "no model named '\(Self.excerpt(name))'; loaded: \(available.isEmpty ? "none" : available.joined(separator: ", "))"
        case .wrongModelKind(let name, let expected): "model '\(name)' is not a \(expected) model"
        case .noModel(let kind): "no \(kind) model is loaded"
        case .overloaded(let reason, let retryAfter): "\(reason); retry in \(retryAfter) s"
        case .clientClosed: "the client closed the connection before the work started"
        case .modelUnavailable(let name, let reason): "model '\(name)' is unavailable: \(reason)"
        case .puzzleNotFound(let id): "no puzzle with id '\(Self.excerpt(id))' (unknown, expired or evicted)"
        case .sampleNotFound(let message): message
        case .storeUnavailable(let store, let reason):
            "the puzzle store is unavailable, try again shortly (\(reason.contains(store) ? reason : "\(store): \(reason)"))"
        }
    }

    /// The most characters of a client's own text (a name, an id, a parameter value) that an
    /// error message repeats.
    public static let excerptLength = 64

    /// `text`, or its first ``excerptLength`` characters and how long it was: an error answer
    /// never grows with the client's input.
    static func excerpt(_ text: String) -> String {
        guard text.count > excerptLength else { return text }
        return "\(text.prefix(excerptLength))… (\(text.utf8.count) bytes)"
    }

    /// Seconds a client should wait before retrying, for the `Retry-After` header.
    public var retryAfterSeconds: Int? {
        if case .storeUnavailable = self { return 1 }
        if case .overloaded(_, let seconds) = self { return seconds }
        return nil
    }

    /// Translates an error from the libraries into the service's terms.
    ///
    /// Image decoding errors become `invalid_image` (corrupt, truncated or unrecognised data),
    /// `image_too_large`, `unsupported_image_format` or, for an animation, `unprocessable_input`; Sinkhorn and assignment errors on
    /// non-finite numbers become `numerical_failure`; configuration errors of a model or a file
    /// become `unprocessable_input`; anything else still becomes a JSON error, never a crash.
    public static func wrapping(_ error: any Error) -> ServiceError {
        switch error {
        case let error as ServiceError:
            return error
        case let error as PuzzleStoreError:
            switch error {
            case .unavailable(let store, let reason): return .storeUnavailable(store: store, reason: reason)
            case .entryTooLarge: return .unprocessableInput(error.description)
            }
        case let error as PNGError:
            switch error {
            case .imageTooLarge(let width, let height, let channels, let limit):
                return .imageTooLarge(width: width, height: height, channels: channels, limit: limit)
            case .notPNG, .decodingFailed, .encodingFailed:
                return .invalidImage(error.description)
            }
        case let error as ImageDecodingError:
            switch error {
            case .tooLarge(let width, let height, let channels, let limit):
                return .imageTooLarge(width: width, height: height, channels: channels, limit: limit)
            case .unsupportedFormat:
                return .unsupportedImageFormat(error.description)
            case .animated:
                return .unprocessableInput(error.description)
            case .unrecognisedFormat, .truncated, .corrupt:
                return .invalidImage(error.description)
            }
        case let error as SinkhornError:
            switch error {
            case .invalidTemperature(let value):
                return .invalidParameter(name: "tau", value: String(value), reason: "must be a positive finite number")
            case .invalidIterations(let value):
                return .invalidParameter(name: "iterations", value: String(value), reason: "must be at least 1")
            case .nonFiniteInput:
                return .numericalFailure("the scores divided by tau are not finite numbers; use a larger tau")
            default:
                return .numericalFailure("Sinkhorn operator failed: \(error)")
            }
        case let error as AssignmentError:
            switch error {
            case .nonFiniteCost(let row, let column):
                return .numericalFailure("the network produced a non-finite score at row \(row), column \(column)")
            default:
                return .numericalFailure("matching failed: \(error)")
            }
        case let error as GzipError:
            return .unprocessableInput(error.description)
        case let error as NeuralNetError:
            return .unprocessableInput(error.description)
        case let error as SafetensorsError:
            return .unprocessableInput(error.description)
        default:
            return .numericalFailure("request failed: \(error)")
        }
    }
}

extension ServiceError {
    /// The `{"error": {"code", "message"}}` body.
    struct Body: Encodable {
        struct Detail: Encodable {
            var code: String
            var message: String
        }
        var error: Detail
    }

    /// Renders router and server failures (404, 405, 413, 408, handler errors) as JSON errors.
    ///
    /// A handler error that is a ``ServiceError`` keeps its code and message; a protocol failure
    /// gets a code from its status.
    public static let jsonRenderer: HTTPErrorRenderer = { failure in
        let code: String, message: String
        var retryAfter: Int?
        switch failure {
        case .handlerError(let error as ServiceError):
            (code, message) = (error.code, error.description)
            retryAfter = error.retryAfterSeconds
        case .handlerError:
            (code, message) = ("internal_error", failure.message)
        case .notFound:
            (code, message) = ("not_found", failure.message)
        case .methodNotAllowed:
            (code, message) = ("method_not_allowed", failure.message)
        case .requestTimeout:
            (code, message) = ("request_timeout", failure.message)
        case .serviceUnavailable:
            (code, message) = ("service_unavailable", failure.message)
        case .malformedRequest:
            code = switch failure.status.code {
            case 413: "content_too_large"
            case 414: "uri_too_long"
            case 431: "header_fields_too_large"
            case 501: "not_implemented"
            case 505: "http_version_not_supported"
            default: "malformed_request"
            }
            message = failure.message
        }
        var response = errorResponse(code: code, message: message, status: failure.status)
        if let retryAfter { response.headers.set(name: "Retry-After", value: String(retryAfter)) }
        return response
    }

    /// A JSON error response.
    static func errorResponse(code: String, message: String, status: HTTPStatus) -> HTTPResponse {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let fallback = Data(#"{"error":{"code":"internal_error","message":"error not encodable"}}"#.utf8)
        let data = (try? encoder.encode(Body(error: .init(code: code, message: message)))) ?? fallback
        return HTTPResponse.json(data, status: status)
    }
}
