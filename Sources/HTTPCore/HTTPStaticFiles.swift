import Foundation

/// Serves the files of one directory for GET and HEAD.
///
/// Paths are resolved from the decoded path segments: a segment that is empty, `.`, `..`,
/// or contains `/`, `\` or NUL is refused (404), and the resolved file must lie inside the
/// directory after symbolic links are followed, so no request reaches a file outside it.
/// A directory (including `/`) serves its `index.html`.
public struct HTTPStaticFiles: Sendable {
    /// The served directory, resolved.
    public let directory: String
    /// The file served for a directory.
    public let indexFile: String

    /// Creates a file server.
    ///
    /// - Parameters:
    ///   - directory: the directory to serve.
    ///   - indexFile: the file served for a directory path.
    public init(directory: String, indexFile: String = "index.html") {
        self.directory = URL(fileURLWithPath: directory).standardizedFileURL.resolvingSymlinksInPath().path
        self.indexFile = indexFile
    }

    /// A handler for `HTTPRouter.fallback` or a `/{path...}` route.
    public var handler: HTTPRouter.Handler {
        let files = self
        return { request in try files.respond(to: request) }
    }

    /// Serves the file at `request.pathSegments` (or at `pathParameters["path"]` when routed
    /// with `{path...}`).
    ///
    /// - Throws: `HTTPFailure.notFound` for a missing or refused path,
    ///   `HTTPFailure.methodNotAllowed` for a method other than GET and HEAD on an existing file.
    public func respond(to request: HTTPRequest) throws(HTTPFailure) -> HTTPResponse {
        let segments: [String]
        if let routed = request.pathParameters["path"] {
            segments = routed.isEmpty ? [] : routed.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        } else {
            segments = request.pathSegments
        }
        guard let file = resolve(segments) else { throw .notFound(path: request.path) }
        guard request.method == .get || request.method == .head else {
            throw .methodNotAllowed(allowed: [.get, .head])
        }
        guard let contents = FileManager.default.contents(atPath: file) else { throw .notFound(path: request.path) }
        let fileExtension = (file as NSString).pathExtension
        return HTTPResponse(status: .ok, headers: [
            "Content-Type": HTTPStaticFiles.contentType(forExtension: fileExtension),
            "X-Content-Type-Options": "nosniff",
        ], body: contents)
    }

    /// The resolved path of an existing regular file inside `directory`, or `nil`.
    func resolve(_ segments: [String]) -> String? {
        var parts = segments
        if parts.last == "" { parts.removeLast() }
        for part in parts {
            if part.isEmpty || part == "." || part == ".." { return nil }
            if part.contains("/") || part.contains("\\") || part.contains("\0") { return nil }
        }
        var candidate = ([directory] + parts).joined(separator: "/")
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: candidate, isDirectory: &isDirectory) else { return nil }
        if isDirectory.boolValue {
            candidate += "/" + indexFile
            guard FileManager.default.fileExists(atPath: candidate, isDirectory: &isDirectory), !isDirectory.boolValue else {
                return nil
            }
        }
        let resolved = URL(fileURLWithPath: candidate).resolvingSymlinksInPath().path
        guard resolved.hasPrefix(directory + "/") else { return nil }
        return resolved
    }

    /// The media type for a file extension (RFC 9110 §8.3), `application/octet-stream` if unknown.
    public static func contentType(forExtension fileExtension: String) -> String {
        switch fileExtension.lowercased() {
        case "html", "htm": "text/html; charset=utf-8"
        case "js", "mjs": "text/javascript; charset=utf-8"
        case "css": "text/css; charset=utf-8"
        case "json", "map": "application/json"
        case "png": "image/png"
        case "jpg", "jpeg": "image/jpeg"
        case "gif": "image/gif"
        case "webp": "image/webp"
        case "svg": "image/svg+xml"
        case "ico": "image/x-icon"
        case "txt": "text/plain; charset=utf-8"
        case "wasm": "application/wasm"
        default: "application/octet-stream"
        }
    }
}
