#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A system error while reading a file.
public struct FileReadError: Error, Sendable {
    public var message: String
    public init(message: String) { self.message = message }
}

/// Whole-file reads through the C library, reporting `strerror` messages.
public enum FileBytes {
    public static func read(_ path: String) -> Result<[UInt8], FileReadError> {
        func failure(_ code: Int32) -> Result<[UInt8], FileReadError> {
            .failure(FileReadError(message: strerror(code).map { String(cString: $0) } ?? "error \(code)"))
        }
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return failure(errno) }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { return failure(errno) }
        guard (status.st_mode & S_IFMT) == S_IFREG else { return .failure(FileReadError(message: "not a regular file")) }
        var bytes = [UInt8](repeating: 0, count: Int(status.st_size))
        var filled = 0
        var code: Int32 = 0
        bytes.withUnsafeMutableBytes { buffer in
            while filled < buffer.count {
                let count = Glibc.read(descriptor, buffer.baseAddress! + filled, buffer.count - filled)
                if count < 0 {
                    if errno == EINTR { continue }
                    code = errno
                    return
                }
                if count == 0 { break }
                filled += count
            }
        }
        if code != 0 { return failure(code) }
        return .success(filled == bytes.count ? bytes : Array(bytes[..<filled]))
    }
}
