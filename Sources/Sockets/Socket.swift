import Glibc

/// Why a socket call failed.
public enum SocketError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The host name did not resolve; `message` is the resolver's explanation.
    case addressResolution(host: String, message: String)
    /// A socket system call failed with `errno`.
    case systemCall(operation: String, errno: Int32)

    public var description: String {
        switch self {
        case .addressResolution(let host, let message): "cannot resolve \(host): \(message)"
        case .systemCall(let operation, let code): "\(operation) failed: \(String(cString: strerror(code)))"
        }
    }
}

/// Thin wrappers over the BSD socket calls a TCP server needs; they know nothing about the
/// protocol spoken over them.
public enum Socket {
    /// Outcome of a non-blocking transfer.
    public enum Transfer: Sendable, Equatable {
        case bytes(Int)
        case wouldBlock
        case closed
        case failed(Int32)
    }

    /// Creates a non-blocking listening TCP socket.
    ///
    /// - Returns: the descriptor and the bound port (useful when `port` is 0).
    /// - Throws: `SocketError` when resolution, bind or listen fails.
    public static func listen(host: String, port: Int, backlog: Int) throws(SocketError) -> (descriptor: Int32, port: Int) {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let first = list else {
            throw .addressResolution(host: host, message: String(cString: gai_strerror(status)))
        }
        defer { freeaddrinfo(list) }

        let descriptor = socket(first.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw .systemCall(operation: "socket", errno: errno) }
        var one: Int32 = 1
        setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard bind(descriptor, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else {
            let code = errno
            close(descriptor)
            throw .systemCall(operation: "bind \(host):\(port)", errno: code)
        }
        guard Glibc.listen(descriptor, Int32(backlog)) == 0 else {
            let code = errno
            close(descriptor)
            throw .systemCall(operation: "listen", errno: code)
        }
        setNonBlocking(descriptor)
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        guard named == 0 else {
            let code = errno
            close(descriptor)
            throw .systemCall(operation: "getsockname", errno: code)
        }
        return (descriptor, address(of: storage).port)
    }

    /// Accepts one pending connection, made non-blocking, close-on-exec and without Nagle delay.
    ///
    /// - Returns: the descriptor and the peer address, `nil` when none is pending; a negative
    ///   descriptor carries the `errno` of a failure.
    public static func accept(_ listener: Int32) -> (descriptor: Int32, peer: String)? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let descriptor = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.accept(listener, $0, &length) }
        }
        if descriptor < 0 {
            let code = errno
            if code == EAGAIN || code == EWOULDBLOCK || code == EINTR || code == ECONNABORTED { return nil }
            return (-code, "")
        }
        setNonBlocking(descriptor)
        _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
        var one: Int32 = 1
        setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let (host, port) = address(of: storage)
        return (descriptor, storage.ss_family == sa_family_t(AF_INET6) ? "[\(host)]:\(port)" : "\(host):\(port)")
    }

    /// Whether the peer has ended its side of the connection (a zero-byte read is pending) or
    /// reset it, without consuming anything (`MSG_PEEK`) and without blocking. Data still
    /// waiting to be read (a pipelined request) counts as open.
    public static func peerHasClosed(_ descriptor: Int32) -> Bool {
        var byte: UInt8 = 0
        let count = recv(descriptor, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
        if count == 0 { return true }
        if count < 0 {
            let code = errno
            return !(code == EAGAIN || code == EWOULDBLOCK || code == EINTR)
        }
        return false
    }

    /// Receives into `buffer` without blocking.
    public static func receive(_ descriptor: Int32, into buffer: UnsafeMutableRawBufferPointer) -> Transfer {
        let count = recv(descriptor, buffer.baseAddress, buffer.count, 0)
        if count > 0 { return .bytes(count) }
        if count == 0 { return .closed }
        let code = errno
        return (code == EAGAIN || code == EWOULDBLOCK || code == EINTR) ? .wouldBlock : .failed(code)
    }

    /// Sends without blocking and without raising SIGPIPE on a closed peer.
    public static func send(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer) -> Transfer {
        guard bytes.count > 0 else { return .bytes(0) }
        let count = Glibc.send(descriptor, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
        if count >= 0 { return .bytes(count) }
        let code = errno
        return (code == EAGAIN || code == EWOULDBLOCK || code == EINTR) ? .wouldBlock : .failed(code)
    }

    /// Ends our sending side (the peer reads end of file) while still receiving.
    public static func shutdownWrite(_ descriptor: Int32) {
        _ = shutdown(descriptor, Int32(SHUT_WR))
    }

    public static func close(_ descriptor: Int32) {
        _ = Glibc.close(descriptor)
    }

    private static func setNonBlocking(_ descriptor: Int32) {
        let flags = fcntl(descriptor, F_GETFL)
        _ = fcntl(descriptor, F_SETFL, flags | O_NONBLOCK)
    }

    private static func decodeCString(_ text: [CChar]) -> String {
        let bytes = text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func address(of storage: sockaddr_storage) -> (host: String, port: Int) {
        var copy = storage
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &copy) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { pointer in
                    var address = pointer.pointee.sin_addr
                    inet_ntop(AF_INET, &address, &text, socklen_t(text.count))
                    return (decodeCString(text), Int(UInt16(bigEndian: pointer.pointee.sin_port)))
                }
            }
        case AF_INET6:
            return withUnsafePointer(to: &copy) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
                    var address = pointer.pointee.sin6_addr
                    inet_ntop(AF_INET6, &address, &text, socklen_t(text.count))
                    return (decodeCString(text), Int(UInt16(bigEndian: pointer.pointee.sin6_port)))
                }
            }
        default:
            return ("unknown", 0)
        }
    }
}
