import Glibc

extension Socket {
    /// What a descriptor is waited on for.
    public enum Interest: Sendable {
        case readable
        case writable
    }

    /// Outcome of waiting on a descriptor.
    public enum Wait: Sendable, Equatable {
        /// The descriptor is ready (or has an error or hang-up pending, which the next transfer reports).
        case ready
        case timedOut
        case failed(Int32)
    }

    /// Opens a non-blocking TCP connection, trying each address `host` resolves to in turn, and
    /// gives up on an address after `timeoutMilliseconds` (a connection timeout is
    /// `.systemCall(operation: "connect HOST:PORT", errno: ETIMEDOUT)`).
    ///
    /// The descriptor is close-on-exec and without Nagle delay (request-reply protocols would
    /// otherwise wait for the delayed acknowledgement on every small command).
    ///
    /// - Parameters:
    ///   - host: a name or a numeric address.
    ///   - port: the TCP port.
    ///   - timeoutMilliseconds: the most time spent on each address, at least 1.
    /// - Returns: the connected descriptor; the caller closes it.
    /// - Throws: `SocketError` when resolution fails or no address accepts.
    public static func connect(host: String, port: Int, timeoutMilliseconds: Int) throws(SocketError) -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, list != nil else {
            throw .addressResolution(host: host, message: String(cString: gai_strerror(status)))
        }
        defer { freeaddrinfo(list) }
        var lastError: Int32 = ECONNREFUSED
        var candidate = list
        while let address = candidate {
            candidate = address.pointee.ai_next
            let descriptor = socket(address.pointee.ai_family,
                                    Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            guard descriptor >= 0 else {
                lastError = errno
                continue
            }
            var code: Int32 = 0
            if Glibc.connect(descriptor, address.pointee.ai_addr, address.pointee.ai_addrlen) != 0 {
                code = errno
                if code == EINPROGRESS || code == EINTR {
                    switch wait(descriptor, for: .writable, timeoutMilliseconds: timeoutMilliseconds) {
                    case .ready:
                        var pending: Int32 = 0
                        var length = socklen_t(MemoryLayout<Int32>.size)
                        code = getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &pending, &length) == 0 ? pending : errno
                    case .timedOut:
                        code = ETIMEDOUT
                    case .failed(let failure):
                        code = failure
                    }
                }
            }
            if code == 0 {
                var one: Int32 = 1
                setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                return descriptor
            }
            Glibc.close(descriptor)
            lastError = code
        }
        throw .systemCall(operation: "connect \(host):\(port)", errno: lastError)
    }

    /// Waits until `descriptor` is ready for `interest` or `timeoutMilliseconds` pass; a signal
    /// interrupting the wait resumes it with the time left.
    public static func wait(_ descriptor: Int32, for interest: Interest, timeoutMilliseconds: Int) -> Wait {
        let events = Int16(interest == .readable ? POLLIN : POLLOUT)
        let deadline = monotonicMilliseconds() + max(0, timeoutMilliseconds)
        while true {
            var entry = pollfd(fd: descriptor, events: events, revents: 0)
            let left = max(0, deadline - monotonicMilliseconds())
            let count = poll(&entry, 1, Int32(clamping: left))
            if count > 0 { return .ready }
            if count == 0 { return .timedOut }
            let code = errno
            if code != EINTR { return .failed(code) }
        }
    }

    /// Milliseconds of the monotonic clock, for deadlines.
    public static func monotonicMilliseconds() -> Int {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return now.tv_sec * 1000 + now.tv_nsec / 1_000_000
    }
}
