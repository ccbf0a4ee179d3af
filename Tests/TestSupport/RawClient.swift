import Foundation
import Glibc

/// A blocking TCP client for tests: it sends raw bytes and reads responses with a receive
/// timeout, so a test never sleeps to synchronise and never hangs.
public final class RawClient {
    public struct Response {
        public var status: Int
        public var headers: [String: String]
        public var body: [UInt8]
        public var text: String { String(decoding: body, as: UTF8.self) }
    }

    public enum Failure: Error {
        case connect(Int32)
        case timedOut
        case closed
        case malformed(String)
    }

    public let descriptor: Int32
    private var buffer: [UInt8] = []

    /// Connects to 127.0.0.1:port from `source` (another loopback address stands for another
    /// client); reads time out after `timeout` seconds.
    public init(port: Int, timeout: Double = 5, source: String? = nil) throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw Failure.connect(errno) }
        /// Runs `call` (bind or connect) on an IPv4 address; closes the socket when it fails.
        func use(_ host: String, port: Int, _ call: (Int32, UnsafePointer<sockaddr>, socklen_t) -> Int32) throws {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr(host)
            let result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { call(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard result == 0 else {
                let code = errno
                close(descriptor)
                throw Failure.connect(code)
            }
        }
        if let source { try use(source, port: 0, bind) }
        try use("127.0.0.1", port: port, connect)
        var interval = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1e6))
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &interval, socklen_t(MemoryLayout<timeval>.size))
        self.descriptor = descriptor
    }

    deinit { close(descriptor) }

    public func send(_ text: String) { send(Array(text.utf8)) }

    public func send(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent <= 0 { return }
            offset += sent
        }
    }

    /// Reads more bytes into the buffer; `false` at end of file.
    private func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
        if count > 0 {
            buffer.append(contentsOf: chunk[0..<count])
            return true
        }
        if count == 0 { return false }
        if errno == EAGAIN || errno == EWOULDBLOCK { throw Failure.timedOut }
        if errno == ECONNRESET { return false }
        throw Failure.malformed("recv errno \(errno)")
    }

    /// Reads one response (Content-Length or chunked framing; no body for HEAD or 1xx/204/304).
    public func readResponse(forHead: Bool = false) throws -> Response {
        var headEnd: Range<Int>?
        while true {
            headEnd = buffer.firstRange(of: Array("\r\n\r\n".utf8))
            if headEnd != nil { break }
            guard try fill() else { throw Failure.closed }
        }
        guard let headEnd else { throw Failure.closed }
        let head = String(decoding: buffer[..<headEnd.lowerBound], as: UTF8.self)
        buffer.removeFirst(headEnd.upperBound)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, statusLine[0] == "HTTP/1.1", let status = Int(statusLine[1]) else {
            throw Failure.malformed(head)
        }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { throw Failure.malformed(line) }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body: [UInt8] = []
        if forHead || status < 200 || status == 204 || status == 304 {
            return Response(status: status, headers: headers, body: [])
        }
        if headers["transfer-encoding"] == "chunked" {
            while true {
                var lineEnd: Range<Int>?
                while true {
                    lineEnd = buffer.firstRange(of: Array("\r\n".utf8))
                    if lineEnd != nil { break }
                    guard try fill() else { throw Failure.closed }
                }
                guard let lineEnd, let size = Int(String(decoding: buffer[..<lineEnd.lowerBound], as: UTF8.self), radix: 16) else {
                    throw Failure.malformed("chunk size")
                }
                buffer.removeFirst(lineEnd.upperBound)
                while buffer.count < size + 2 { guard try fill() else { throw Failure.closed } }
                body.append(contentsOf: buffer[0..<size])
                buffer.removeFirst(size + 2)
                if size == 0 { break }
            }
        } else if let length = headers["content-length"].flatMap(Int.init) {
            while buffer.count < length { guard try fill() else { throw Failure.closed } }
            body = Array(buffer[0..<length])
            buffer.removeFirst(length)
        }
        return Response(status: status, headers: headers, body: body)
    }

    /// Whether the server closed the connection (end of file, or reset) with nothing more to read.
    public func readsEndOfFile() -> Bool {
        guard buffer.isEmpty else { return false }
        do { return try !fill() } catch { return false }
    }
}
