import Foundation

/// Serves the files of one directory for GET and HEAD (and OPTIONS).
///
/// Paths are resolved from the decoded path segments: a segment that is empty, `.`, `..`,
/// or contains `/`, `\` or NUL is refused (404), and the resolved file must lie inside the
/// directory after symbolic links are followed, so no request reaches a file outside it.
/// A directory (including `/`) serves its `index.html`.
///
/// Validators and caching (RFC 9110 §8.8, RFC 9111 §5.2.2): every file gets a strong `ETag`
/// from a hash of its content (`HTTPEntityTag.strong(hashing:)`: the same bytes give the same
/// tag on every replica and after a redeploy, which size and modification time would not),
/// `Last-Modified` from its modification time, and `Cache-Control` from ``cacheControl``. The
/// server's ``HTTPResponsePolicy`` turns a matching `If-None-Match` or `If-Modified-Since` into
/// 304. OPTIONS on an existing file answers 204 with `Allow`, like the API routes.
public struct HTTPStaticFiles: Sendable {
    /// The served directory, resolved.
    public let directory: String
    /// The file served for a directory.
    public let indexFile: String
    /// The `Cache-Control` value for a file, from its extension.
    public let cacheControl: @Sendable (_ fileExtension: String) -> String
    /// The route label of the files' responses in metrics and logs.
    public static let routeLabel = "static"

    /// The default cache policy: HTML `no-cache` (a browser revalidates the page on every load,
    /// a cheap 304 when unchanged, so a new deploy shows up at once), everything else
    /// `public, max-age=300` (scripts, styles and images are reused for five minutes without a
    /// request; the names carry no content hash, so a longer life would keep an old script
    /// under a new page for longer after a deploy).
    public static let defaultCacheControl: @Sendable (String) -> String = { fileExtension in
        switch fileExtension.lowercased() {
        case "html", "htm": "no-cache"
        default: "public, max-age=300"
        }
    }

    /// Creates a file server.
    ///
    /// - Parameters:
    ///   - directory: the directory to serve.
    ///   - indexFile: the file served for a directory path.
    ///   - cacheControl: the `Cache-Control` value for a file extension.
    public init(directory: String, indexFile: String = "index.html",
                cacheControl: @escaping @Sendable (String) -> String = HTTPStaticFiles.defaultCacheControl) {
        self.directory = URL(fileURLWithPath: directory).standardizedFileURL.resolvingSymlinksInPath().path
        self.indexFile = indexFile
        self.cacheControl = cacheControl
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
    ///   `HTTPFailure.methodNotAllowed` for a method other than GET, HEAD and OPTIONS on an
    ///   existing file.
    public func respond(to request: HTTPRequest) throws(HTTPFailure) -> HTTPResponse {
        let segments: [String]
        if let routed = request.pathParameters["path"] {
            segments = routed.isEmpty ? [] : routed.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        } else {
            segments = request.pathSegments
        }
        guard let file = resolve(segments) else { throw .notFound(path: request.path) }
        let allowed: [HTTPMethod] = [.get, .head, .options]
        if request.method == .options {
            return HTTPResponse(status: .noContent, headers: ["Allow": allowed.map(\.rawValue).joined(separator: ", ")],
                                route: HTTPStaticFiles.routeLabel)
        }
        guard request.method == .get || request.method == .head else {
            throw .methodNotAllowed(allowed: allowed)
        }
        guard let contents = FileManager.default.contents(atPath: file) else { throw .notFound(path: request.path) }
        let bytes = [UInt8](contents)
        let fileExtension = (file as NSString).pathExtension
        var headers: HTTPHeaders = [
            "Content-Type": HTTPStaticFiles.contentType(forExtension: fileExtension),
            "X-Content-Type-Options": "nosniff",
            "ETag": HTTPEntityTag.strong(hashing: bytes).headerValue,
            "Cache-Control": cacheControl(fileExtension),
        ]
        if let modified = (try? FileManager.default.attributesOfItem(atPath: file))?[.modificationDate] as? Date {
            headers["Last-Modified"] = HTTPDate.format(modified)
        }
        return HTTPResponse(status: .ok, headers: headers, body: bytes, route: HTTPStaticFiles.routeLabel)
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
