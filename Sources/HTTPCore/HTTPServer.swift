import Dispatch
import Foundation
import Glibc
import Sockets

/// An HTTP/1.1 server on non-blocking sockets and Dispatch.
///
/// Design: one serial event queue owns every socket and all connection state; Dispatch read
/// and write sources tell it when a socket is ready, so a connection that sends or reads slowly
/// costs a few bytes of state and never a thread. Complete requests go to a concurrent worker
/// queue; the response comes back to the event queue to be written. Each connection has at most
/// one request in its handler at a time, so pipelined responses leave in request order, and it
/// does not read while a request is being handled or a response is being written (back-pressure).
///
/// Timeouts (`HTTPServerConfiguration`): header and body timeouts run from the request's first
/// byte and from the end of its head, and answer 408 then close; idle keep-alive connections
/// are closed silently; a response the client does not read is abandoned. A response that closes
/// the connection is followed by a half-close and a short drain of unread input (RFC 9112 §9.6),
/// so the client reads e.g. a 413 instead of a connection reset.
public final class HTTPServer: @unchecked Sendable {
    // Thread safety: everything below `queue` is touched only on `queue`; `lock` guards
    // `boundPort`, `phase` and `counters`.

    /// The configuration in force.
    public let configuration: HTTPServerConfiguration
    private let responder: @Sendable (HTTPRequest) -> HTTPResponse

    private let queue = DispatchQueue(label: "HTTPServer.events")
    private let workers = DispatchQueue(label: "HTTPServer.workers", attributes: .concurrent)
    private let stopped = DispatchGroup()
    private let lock = NSLock()
    private var boundPort = 0
    private var phase = Phase.created
    private var counters = HTTPServerMetrics()

    private enum Phase { case created, running, stopping, stopped }

    private var listener: Int32 = -1
    private var listenSource: DispatchSourceRead?
    private var timer: DispatchSourceTimer?
    private var connections: [UInt64: Connection] = [:]
    private var nextIdentifier: UInt64 = 0
    private var draining = false
    private var drainDeadline: UInt64 = .max
    private var acceptPausedUntil: UInt64 = 0
    /// Open connections by client address (without the port).
    private var connectionsPerClient: [String: Int] = [:]
    /// Bytes of request content reserved by connections reading or handling a request.
    private var bodyBytesReserved = 0
    /// The reservation's peak since memory was last handed back to the system.
    private var bodyBytesPeak = 0
    private var lastTrim: UInt64 = 0
    /// Runs cheap requests (``HTTPServerConfiguration/isCheap``) in arrival order on a thread of
    /// its own, so they never queue behind heavy work for one of Dispatch's worker threads.
    private let cheapLane = SerialLane(name: "HTTPServer.cheap")
    private let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
    /// The 503 answers sent as a connection is refused at accept: at the server's bound, and at
    /// one client address's bound.
    private let fullResponse: [UInt8], clientFullResponse: [UInt8]

    /// Creates a server that answers every request with `responder` (run on a worker queue).
    public init(configuration: HTTPServerConfiguration, responder: @escaping @Sendable (HTTPRequest) -> HTTPResponse) {
        self.configuration = configuration
        self.responder = responder
        func refusal(_ reason: HTTPUnavailableReason) -> [UInt8] {
            var busy = HTTPFailure.serviceUnavailable(reason).response(renderer: configuration.errorRenderer)
            busy.headers["Retry-After"] = "1"
            return HTTPResponseWriter.serialize(busy, requestMethod: nil, requestVersion: .http1_1, keepAlive: false)
        }
        fullResponse = refusal(.connectionLimit(configuration.maxConnections))
        clientFullResponse = refusal(.clientConnectionLimit(configuration.maxConnectionsPerClient))
    }

    /// Creates a server that answers with `router`.
    public convenience init(configuration: HTTPServerConfiguration, router: HTTPRouter) {
        self.init(configuration: configuration, responder: { router.respond(to: $0) })
    }

    deinit {
        scratch.deallocate()
    }

    /// The bound port (the real one when configured with 0); 0 before `start()`.
    public var port: Int {
        lock.withLock { boundPort }
    }

    /// A snapshot of the counters.
    public func metrics() -> HTTPServerMetrics {
        lock.withLock { counters }
    }

    /// Binds, listens and starts serving; returns at once.
    ///
    /// - Throws: `HTTPServerError` when already started or the address cannot be bound.
    public func start() throws(HTTPServerError) {
        lock.lock()
        guard phase == .created else {
            lock.unlock()
            throw .alreadyStarted
        }
        phase = .running
        lock.unlock()
        let bound: (descriptor: Int32, port: Int)
        do {
            bound = try Socket.listen(host: configuration.host, port: configuration.port, backlog: configuration.backlog)
        } catch {
            lock.withLock { phase = .stopped }
            throw HTTPServerError(error)
        }
        lock.withLock { boundPort = bound.port }
        stopped.enter()
        queue.sync {
            listener = bound.descriptor
            let source = DispatchSource.makeReadSource(fileDescriptor: bound.descriptor, queue: queue)
            source.setEventHandler { [weak self] in self?.acceptConnections() }
            source.setCancelHandler { Socket.close(bound.descriptor) }
            source.resume()
            listenSource = source

            let interval = tickInterval()
            let tick = DispatchSource.makeTimerSource(queue: queue)
            tick.schedule(deadline: .now() + .nanoseconds(Int(interval)), repeating: .nanoseconds(Int(interval)), leeway: .nanoseconds(Int(interval / 4)))
            tick.setEventHandler { [weak self] in self?.checkDeadlines() }
            tick.resume()
            timer = tick
        }
    }

    /// Stops accepting, then closes the connections and returns when all are closed.
    ///
    /// Graceful: idle connections close at once; requests being received, handled or written
    /// finish (their responses say `Connection: close`) within `shutdownTimeout`, after which
    /// the rest are closed. Not graceful: every connection closes at once. Blocks the caller; do
    /// not call it from a handler. Safe to call more than once.
    public func shutdown(graceful: Bool = true) {
        let shouldStop: Bool = lock.withLock {
            switch phase {
            case .running:
                phase = .stopping
                return true
            case .stopping:
                return true
            case .created, .stopped:
                return false
            }
        }
        guard shouldStop else { return }
        queue.async { self.beginDrain(graceful: graceful) }
        stopped.wait()
    }

    /// Blocks until SIGINT or SIGTERM (or the given signals), then shuts down gracefully; a
    /// second signal during the drain closes everything at once. For executables:
    /// `try server.start(); server.waitForTermination()`.
    public func waitForTermination(signals: [Int32] = [SIGINT, SIGTERM]) {
        let received = DispatchSemaphore(value: 0)
        let signalQueue = DispatchQueue(label: "HTTPServer.signals")
        let count = SignalCount()
        var sources: [DispatchSourceSignal] = []
        for number in signals {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: signalQueue)
            source.setEventHandler { [weak self] in
                if count.increment() == 1 {
                    received.signal()
                } else if let server = self {
                    server.queue.async { server.beginDrain(graceful: false) }
                }
            }
            source.resume()
            sources.append(source)
        }
        received.wait()
        shutdown(graceful: true)
        for source in sources { source.cancel() }
        for number in signals { signal(number, SIG_DFL) }
    }

    private final class SignalCount: @unchecked Sendable {
        private let lock = NSLock()
        private var value = 0
        func increment() -> Int { lock.withLock { value += 1; return value } }
    }

    // MARK: - Event queue

    private static func nanoseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        return UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
    }

    private static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Deadline check granularity: a quarter of the shortest timeout, within 5 ms...250 ms.
    private func tickInterval() -> UInt64 {
        let shortest = [configuration.headerTimeout, configuration.bodyTimeout, configuration.idleTimeout,
                        configuration.writeTimeout, configuration.lingerTimeout].map(HTTPServer.nanoseconds).min() ?? 1_000_000_000
        return min(max(shortest / 4, 5_000_000), 250_000_000)
    }

    private func acceptConnections() {
        guard listener >= 0, !draining else { return }
        if acceptPausedUntil > HTTPServer.now() { return }
        // Bounded so one burst of connects cannot starve the established connections.
        for _ in 0..<64 {
            guard let (descriptor, peer) = Socket.accept(listener) else { return }
            if descriptor < 0 {
                // Out of descriptors (EMFILE/ENFILE): the listener stays readable, so back off
                // instead of spinning.
                acceptPausedUntil = HTTPServer.now() + 100_000_000
                return
            }
            lock.withLock { counters.acceptedConnections += 1 }
            let client = HTTPServer.clientAddress(peer)
            let serverFull = connections.count >= configuration.maxConnections
            if serverFull || connectionsPerClient[client, default: 0] >= configuration.maxConnectionsPerClient {
                lock.withLock { counters.rejectedConnections += 1 }
                (serverFull ? fullResponse : clientFullResponse).withUnsafeBytes { _ = Socket.send(descriptor, $0) }
                Socket.shutdownWrite(descriptor)
                Socket.close(descriptor)
                continue
            }
            open(descriptor, peer: peer)
        }
    }

    private func open(_ descriptor: Int32, peer: String) {
        nextIdentifier += 1
        let connection = Connection(identifier: nextIdentifier, descriptor: descriptor, peer: peer,
                                    limits: configuration.limits, now: HTTPServer.now())
        let source = DispatchSource.makeReadSource(fileDescriptor: descriptor, queue: queue)
        source.setEventHandler { [weak self, weak connection] in
            guard let self, let connection else { return }
            self.readable(connection)
        }
        source.setCancelHandler { connection.sourceCancelled() }
        connection.readSource = source
        connections[connection.identifier] = connection
        connectionsPerClient[HTTPServer.clientAddress(peer), default: 0] += 1
        lock.withLock { counters.openConnections = connections.count }
        source.resume()
    }

    /// The address part of `host:port` or `[v6]:port`.
    static func clientAddress(_ peer: String) -> String {
        guard let colon = peer.lastIndex(of: ":") else { return peer }
        return String(peer[..<colon])
    }

    /// Reserves the content bytes the connection's request may bring, once its head is read.
    /// - Returns: `false` when they do not fit in the body memory budget.
    private func reserveBody(_ connection: Connection) -> Bool {
        let wanted = connection.parser.pendingBodyBytes
        guard wanted > connection.reservedBodyBytes else { return true }
        let extra = wanted - connection.reservedBodyBytes
        guard bodyBytesReserved + extra <= configuration.bodyMemoryBudget else { return false }
        bodyBytesReserved += extra
        bodyBytesPeak = max(bodyBytesPeak, bodyBytesReserved)
        connection.reservedBodyBytes = wanted
        return true
    }

    private func releaseBody(_ connection: Connection) {
        bodyBytesReserved -= connection.reservedBodyBytes
        connection.reservedBodyBytes = 0
    }

    private func readable(_ connection: Connection) {
        guard connection.state != .closed else { return }
        switch Socket.receive(connection.descriptor, into: scratch) {
        case .wouldBlock:
            return
        case .closed, .failed:
            close(connection)
        case .bytes(let count):
            connection.lastActivity = HTTPServer.now()
            if connection.state == .lingering { return }
            connection.parser.append(UnsafeRawBufferPointer(rebasing: scratch[0..<count]))
            process(connection)
        }
    }

    /// Parses buffered bytes while the connection is free to take a request.
    private func process(_ connection: Connection) {
        guard connection.state == .reading else { return }
        do {
            switch try connection.parser.next() {
            case .needMoreData:
                let now = HTTPServer.now()
                switch connection.parser.phase {
                case .idle: break
                case .head: if connection.requestStarted == nil { connection.requestStarted = now }
                case .body:
                    if connection.requestStarted == nil { connection.requestStarted = now }
                    if connection.bodyStarted == nil { connection.bodyStarted = now }
                    guard reserveBody(connection) else {
                        lock.withLock { counters.rejectedBodies += 1 }
                        fail(connection, .serviceUnavailable(.bodyMemoryBudget(configuration.bodyMemoryBudget)), request: nil)
                        return
                    }
                }
                if connection.parser.takeContinueRequest() {
                    // RFC 9110 §10.1.1: the client waits for this before sending the content.
                    queueOutput(connection, Array("HTTP/1.1 100 Continue\r\n\r\n".utf8))
                    flush(connection)
                }
            case .request(var request):
                request.remoteAddress = connection.peer
                connection.requestStarted = nil
                connection.bodyStarted = nil
                connection.state = .handling
                connection.pauseReading()
                dispatch(request, on: connection)
            }
        } catch {
            fail(connection, .malformedRequest(error), request: nil)
        }
    }

    private func dispatch(_ request: HTTPRequest, on connection: Connection) {
        let identifier = connection.identifier
        let received = HTTPServer.now()
        let responder = self.responder
        let policy = configuration.responsePolicy
        var request = request
        let liveness = connection.liveness
        request.isAbandoned = { liveness.peerHasClosed() }
        let work: @Sendable () -> Void = { [weak self, request] in
            let response = policy.apply(responder(request), to: request)
            guard let server = self else { return }
            server.queue.async { server.deliver(response, for: request, to: identifier, received: received) }
        }
        if let isCheap = configuration.isCheap, isCheap(request) {
            cheapLane.run(work)
        } else {
            workers.async(execute: work)
        }
    }

    private func deliver(_ response: HTTPResponse, for request: HTTPRequest, to identifier: UInt64, received: UInt64) {
        guard let connection = connections[identifier], connection.state == .handling else { return }
        releaseBody(connection)
        let keepAlive = request.keepAlive && !response.closesConnection && !draining
        let bytes = HTTPResponseWriter.serialize(response, requestMethod: request.method, requestVersion: request.version, keepAlive: keepAlive)
        record(connection: connection, method: request.method.rawValue, target: request.target, route: response.route,
               status: response.status.code, bytes: request.method == .head || response.status.forbidsBody ? 0 : response.body.count,
               since: received)
        connection.state = .writing(closeAfter: !keepAlive)
        queueOutput(connection, bytes)
        flush(connection)
    }

    /// Answers a failure the server detects itself, then closes.
    private func fail(_ connection: Connection, _ failure: HTTPFailure, request: HTTPRequest?) {
        var response = failure.response(renderer: configuration.errorRenderer)
        if case .serviceUnavailable = failure, !response.headers.contains("Retry-After") { response.headers["Retry-After"] = "1" }
        let bytes = HTTPResponseWriter.serialize(response, requestMethod: request?.method, requestVersion: request?.version ?? .http1_1, keepAlive: false)
        record(connection: connection, method: request?.method.rawValue ?? "-", target: request?.target ?? "-", route: nil,
               status: response.status.code, bytes: response.body.count, since: HTTPServer.now())
        connection.pauseReading()
        connection.state = .writing(closeAfter: true)
        queueOutput(connection, bytes)
        flush(connection)
    }

    private func record(connection: Connection, method: String, target: String, route: String?, status: Int, bytes: Int, since start: UInt64) {
        let elapsed = HTTPServer.now() &- start
        let seconds = Double(elapsed) / 1e9
        lock.withLock { counters.record(route: route, method: method, status: status, seconds: seconds) }
        if let log = configuration.accessLog {
            log(HTTPAccessLogEntry(remoteAddress: connection.peer, method: method, target: target, route: route, status: status,
                                   bytes: bytes, duration: .nanoseconds(Int64(clamping: elapsed)), date: Date()))
        }
    }

    private func queueOutput(_ connection: Connection, _ bytes: [UInt8]) {
        if connection.outputOffset == connection.output.count {
            connection.output = bytes
            connection.outputOffset = 0
        } else {
            connection.output.append(contentsOf: bytes)
        }
        connection.writeProgress = HTTPServer.now()
    }

    /// Sends pending output; when it is all sent, moves the connection on.
    private func flush(_ connection: Connection) {
        while connection.outputOffset < connection.output.count {
            let result = connection.output.withUnsafeBytes {
                Socket.send(connection.descriptor, UnsafeRawBufferPointer(rebasing: $0[connection.outputOffset...]))
            }
            switch result {
            case .bytes(let count):
                connection.outputOffset += count
                connection.writeProgress = HTTPServer.now()
            case .wouldBlock:
                waitForWritable(connection)
                return
            case .closed, .failed:
                close(connection)
                return
            }
        }
        connection.output = []
        connection.outputOffset = 0
        connection.pauseWriting()
        switch connection.state {
        case .writing(let closeAfter):
            if closeAfter || draining {
                linger(connection)
            } else {
                connection.state = .reading
                connection.lastActivity = HTTPServer.now()
                connection.resumeReading()
                process(connection)
            }
        case .reading, .handling, .lingering, .closed:
            break
        }
    }

    private func waitForWritable(_ connection: Connection) {
        if connection.writeSource == nil {
            let source = DispatchSource.makeWriteSource(fileDescriptor: connection.descriptor, queue: queue)
            source.setEventHandler { [weak self, weak connection] in
                guard let self, let connection, connection.state != .closed else { return }
                self.flush(connection)
            }
            source.setCancelHandler { connection.sourceCancelled() }
            connection.writeSource = source
            connection.writeSuspended = true
        }
        connection.resumeWriting()
    }

    /// Half-closes and drains unread input briefly so the peer reads our response, not a reset.
    private func linger(_ connection: Connection) {
        Socket.shutdownWrite(connection.descriptor)
        connection.state = .lingering
        connection.lingerDeadline = HTTPServer.now() + HTTPServer.nanoseconds(configuration.lingerTimeout)
        connection.resumeReading()
    }

    private func close(_ connection: Connection) {
        guard connection.state != .closed else { return }
        connection.state = .closed
        releaseBody(connection)
        connection.liveness.markClosed()
        connection.cancelSources()
        connections[connection.identifier] = nil
        let client = HTTPServer.clientAddress(connection.peer)
        if let count = connectionsPerClient[client], count > 1 {
            connectionsPerClient[client] = count - 1
        } else {
            connectionsPerClient[client] = nil
        }
        lock.withLock { counters.openConnections = connections.count }
        if draining && connections.isEmpty { finishDrain() }
    }

    private func checkDeadlines() {
        let now = HTTPServer.now()
        // After a burst of large bodies has drained, hand the freed heap back to the system
        // (glibc keeps it otherwise), at most once a second.
        if bodyBytesReserved == 0, bodyBytesPeak >= 16 << 20, now &- lastTrim > 1_000_000_000 {
            lastTrim = now
            bodyBytesPeak = 0
            DispatchQueue.global(qos: .utility).async { [self] in
                _ = glibcMallocTrim(0)
                lock.withLock { counters.heapTrims += 1 }
            }
        }
        if acceptPausedUntil != 0 && acceptPausedUntil <= now {
            acceptPausedUntil = 0
            acceptConnections()
        }
        let header = HTTPServer.nanoseconds(configuration.headerTimeout)
        let body = HTTPServer.nanoseconds(configuration.bodyTimeout)
        let idle = HTTPServer.nanoseconds(configuration.idleTimeout)
        let write = HTTPServer.nanoseconds(configuration.writeTimeout)
        for connection in Array(connections.values) {
            if draining && now >= drainDeadline {
                close(connection)
                continue
            }
            switch connection.state {
            case .reading:
                if connection.output.count > connection.outputOffset && now &- connection.writeProgress > write {
                    timedOut(connection)
                    close(connection)
                } else if let started = connection.bodyStarted, now &- started > body {
                    timedOut(connection)
                    fail(connection, .requestTimeout, request: nil)
                } else if connection.bodyStarted == nil, let started = connection.requestStarted, now &- started > header {
                    timedOut(connection)
                    fail(connection, .requestTimeout, request: nil)
                } else if connection.requestStarted == nil && connection.parser.phase == .idle
                            && (draining || now &- connection.lastActivity > idle) {
                    close(connection)
                }
            case .writing:
                if now &- connection.writeProgress > write {
                    timedOut(connection)
                    close(connection)
                }
            case .lingering:
                if now >= connection.lingerDeadline { close(connection) }
            case .handling, .closed:
                break
            }
        }
    }

    private func timedOut(_ connection: Connection) {
        lock.withLock { counters.timedOutConnections += 1 }
    }

    private func beginDrain(graceful: Bool) {
        if !draining {
            draining = true
            listenSource?.cancel()
            listenSource = nil
            listener = -1
        }
        let now = HTTPServer.now()
        drainDeadline = graceful ? min(drainDeadline, now + HTTPServer.nanoseconds(configuration.shutdownTimeout)) : now
        for connection in Array(connections.values) {
            let idle = connection.state == .reading && connection.parser.phase == .idle && connection.requestStarted == nil
                && connection.output.count == connection.outputOffset
            if !graceful || idle || connection.state == .lingering { close(connection) }
        }
        if connections.isEmpty { finishDrain() }
    }

    private func finishDrain() {
        guard let tick = timer else { return }
        tick.cancel()
        timer = nil
        lock.withLock { phase = .stopped }
        stopped.leave()
    }
}

/// The state of one client connection; touched only on the server's event queue.
private final class Connection {
    enum State: Equatable {
        case reading
        case handling
        case writing(closeAfter: Bool)
        case lingering
        case closed
    }

    let identifier: UInt64
    let descriptor: Int32
    let peer: String
    var parser: HTTPRequestParser
    /// Content bytes reserved in the server's body budget for the request being read or handled.
    var reservedBodyBytes = 0
    /// Whether the client is gone, readable from any thread.
    let liveness: ConnectionLiveness
    var state = State.reading
    var readSource: DispatchSourceRead?
    var writeSource: DispatchSourceWrite?
    var readSuspended = false
    var writeSuspended = true
    var output: [UInt8] = []
    var outputOffset = 0
    var lastActivity: UInt64
    var writeProgress: UInt64
    var requestStarted: UInt64?
    var bodyStarted: UInt64?
    var lingerDeadline: UInt64 = 0
    private var liveSources = 0

    init(identifier: UInt64, descriptor: Int32, peer: String, limits: HTTPLimits, now: UInt64) {
        self.identifier = identifier
        self.descriptor = descriptor
        self.peer = peer
        self.liveness = ConnectionLiveness(descriptor: descriptor)
        self.parser = HTTPRequestParser(limits: limits)
        self.lastActivity = now
        self.writeProgress = now
    }

    func pauseReading() {
        guard let readSource, !readSuspended else { return }
        readSource.suspend()
        readSuspended = true
    }

    func resumeReading() {
        guard let readSource, readSuspended else { return }
        readSource.resume()
        readSuspended = false
    }

    func pauseWriting() {
        guard let writeSource, !writeSuspended else { return }
        writeSource.suspend()
        writeSuspended = true
    }

    func resumeWriting() {
        guard let writeSource, writeSuspended else { return }
        writeSource.resume()
        writeSuspended = false
    }

    /// Cancels the sources; the descriptor closes when the last cancel handler has run, since
    /// Dispatch may still watch it until then.
    func cancelSources() {
        liveSources = (readSource == nil ? 0 : 1) + (writeSource == nil ? 0 : 1)
        if liveSources == 0 {
            Socket.close(descriptor)
            return
        }
        // A suspended source runs its cancel handler only once resumed.
        if let readSource {
            readSource.cancel()
            if readSuspended { readSource.resume(); readSuspended = false }
        }
        if let writeSource {
            writeSource.cancel()
            if writeSuspended { writeSource.resume(); writeSuspended = false }
        }
    }

    func sourceCancelled() {
        liveSources -= 1
        if liveSources == 0 {
            Socket.close(descriptor)
            readSource = nil
            writeSource = nil
        }
    }
}

/// Whether a connection's client has gone, asked from a handler's thread: once the server closed
/// the connection, or when the socket shows the peer's end of stream. The descriptor is only
/// looked at while the connection is open (checked and closed under one lock), so a reused
/// descriptor number is never mistaken for it.
final class ConnectionLiveness: @unchecked Sendable {
    // Thread safety: `closed` is touched only with `lock` held.
    private let lock = NSLock()
    private var closed = false
    private let descriptor: Int32

    init(descriptor: Int32) { self.descriptor = descriptor }

    func markClosed() { lock.withLock { closed = true } }

    func peerHasClosed() -> Bool {
        lock.withLock { closed || Socket.peerHasClosed(descriptor) }
    }
}

/// glibc's `malloc_trim` (declared in `<malloc.h>`, which the Glibc module does not export):
/// returns free heap memory to the system.
@_silgen_name("malloc_trim")
private func glibcMallocTrim(_ pad: Int) -> Int32

/// A thread of its own that runs closures in arrival order.
final class SerialLane: @unchecked Sendable {
    // Thread safety: `pending` is touched only with `condition` locked.
    private let condition = NSCondition()
    private var pending: [@Sendable () -> Void] = []

    init(name: String) {
        let thread = Thread { [weak self] in
            while let work = self?.next() { work() }
        }
        thread.name = name
        thread.start()
    }

    func run(_ work: @escaping @Sendable () -> Void) {
        condition.withLock {
            pending.append(work)
            condition.signal()
        }
    }

    /// The next closure, waiting for one; `nil` once the lane is gone.
    private func next() -> (@Sendable () -> Void)? {
        condition.lock()
        defer { condition.unlock() }
        while pending.isEmpty { condition.wait() }
        return pending.removeFirst()
    }
}
