import Glibc

/// Size limits applied while parsing a request; each has a default a production server uses.
public struct HTTPLimits: Sendable, Equatable {
    /// Longest request line, without its line terminator (RFC 9112 §3: at least 8000 octets
    /// recommended). Exceeding it answers 414.
    public var requestLineBytes: Int
    /// Largest header section: the field lines with their terminators. Exceeding it answers 431.
    /// Trailer sections have the same limit.
    public var headerSectionBytes: Int
    /// Most field lines in the header section (and in a trailer section). Exceeding it answers 431.
    public var headerFields: Int
    /// Largest content after transfer decoding. Exceeding it answers 413.
    public var bodyBytes: Int
    /// Longest chunk-size line including extensions. Exceeding it answers 400.
    public var chunkLineBytes: Int

    public init(
        requestLineBytes: Int = 8 * 1024, headerSectionBytes: Int = 32 * 1024, headerFields: Int = 100,
        bodyBytes: Int = 10 * 1024 * 1024, chunkLineBytes: Int = 4 * 1024
    ) {
        precondition(requestLineBytes > 0 && headerSectionBytes > 0 && headerFields > 0 && bodyBytes >= 0
                     && chunkLineBytes > 0, "HTTP limits must be positive")
        self.requestLineBytes = requestLineBytes
        self.headerSectionBytes = headerSectionBytes
        self.headerFields = headerFields
        self.bodyBytes = bodyBytes
        self.chunkLineBytes = chunkLineBytes
    }
}

/// An incremental HTTP/1.1 request parser (RFC 9112): a pure function of the bytes appended.
///
/// Append bytes as they arrive and call `next()` until it answers `.needMoreData`; each
/// `.request` consumes one message, so pipelined requests come out one per call, in order.
/// After an error the parser stays failed (every later `next()` throws the same error): the
/// connection's framing is lost and it must be closed.
///
/// Decisions where RFC 9112 leaves a choice:
/// - A bare LF is accepted as a line terminator (§2.2 "MAY"); a CR not followed by LF is
///   rejected (400).
/// - Up to four empty lines before a request line are ignored (§2.2).
/// - Whitespace at the start of the first field line or of a later one (obs-fold, §5.2) is
///   rejected (400), as is whitespace between a field name and its colon (§5.1).
/// - A request line over the limit answers 414: the target is what makes lines long.
/// - Transfer-Encoding together with Content-Length is refused (400, §6.1); a final coding other
///   than `chunked` is 400 (§6.3 item 4 "MUST"); other codings before `chunked` are 501 (§6.1).
/// - Content-Length may repeat one value (also as a list, `42, 42`); differing values are 400.
/// - The content limit is checked against Content-Length before any content is read, and for
///   chunked content against each chunk size before its data is read.
///
/// - Complexity: O(n) in the bytes appended, however they are split.
public struct HTTPRequestParser: Sendable {
    /// The result of `next()`.
    public enum Step: Sendable {
        /// The buffered bytes do not yet hold a complete request.
        case needMoreData
        /// A complete request, removed from the buffer.
        case request(HTTPRequest)
    }

    /// Where the parser is inside the current message (for read timeouts).
    public enum Phase: Sendable, Equatable {
        /// Between messages, nothing buffered.
        case idle
        /// Inside the request line or header section.
        case head
        /// Inside the content (or the trailer section).
        case body
    }

    private enum State: Sendable {
        case requestLine
        case headers
        case body(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
    }

    /// The limits in force.
    public let limits: HTTPLimits

    private var buffer: [UInt8] = []
    private var index = 0
    private var scanIndex = 0
    private var state = State.requestLine
    /// The most content bytes the request being read can still bring: its `Content-Length`, or
    /// the body limit for a chunked one; 0 between requests and for requests without content.
    public private(set) var pendingBodyBytes = 0
    private var failure: HTTPParseError?

    private var emptyLinesBeforeRequest = 0
    private var method: HTTPMethod = .get
    private var target = ""
    private var version: HTTPVersion = .http1_1
    private var headers = HTTPHeaders()
    private var sectionBytes = 0
    private var sectionFields = 0
    private var request: HTTPRequest?
    private var body: [UInt8] = []
    private var trailers = HTTPHeaders()
    private var continuePending = false

    private static let lf = UInt8(ascii: "\n")
    private static let cr = UInt8(ascii: "\r")
    private static let space = UInt8(ascii: " ")
    private static let tab = UInt8(ascii: "\t")
    private static let maximumEmptyLinesBeforeRequest = 4

    /// Creates a parser.
    ///
    /// - Parameter limits: the size limits to enforce.
    public init(limits: HTTPLimits = HTTPLimits()) {
        self.limits = limits
    }

    /// Appends received bytes.
    public mutating func append(_ bytes: some Sequence<UInt8>) {
        buffer.append(contentsOf: bytes)
    }

    /// Appends received bytes from a raw buffer.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        buffer.append(contentsOf: bytes)
    }

    /// The number of received bytes not yet consumed by a returned request.
    public var bufferedByteCount: Int { buffer.count - index }

    /// Where the parser is inside the current message.
    public var phase: Phase {
        switch state {
        case .requestLine: bufferedByteCount == 0 && emptyLinesBeforeRequest == 0 ? .idle : .head
        case .headers: .head
        case .body, .chunkSize, .chunkData, .chunkDataEnd, .trailers: .body
        }
    }

    /// Whether a complete head asked for `Expect: 100-continue` and no interim response has been
    /// requested yet (RFC 9110 §10.1.1); returns `true` once per such request.
    public mutating func takeContinueRequest() -> Bool {
        defer { continuePending = false }
        return continuePending
    }

    /// Parses the next request from the buffered bytes.
    ///
    /// - Returns: `.request` with a complete request, or `.needMoreData`.
    /// - Throws: `HTTPParseError` for a malformed or oversized request; the parser then stays
    ///   failed.
    public mutating func next() throws(HTTPParseError) -> Step {
        if let failure { throw failure }
        do {
            let step = try advance()
            compact()
            return step
        } catch {
            failure = error
            throw error
        }
    }

    /// Declares the end of input (the peer closed its side).
    ///
    /// - Throws: `HTTPParseError.truncatedMessage` when a request was partly received.
    public mutating func finish() throws(HTTPParseError) {
        if let failure { throw failure }
        if phase != .idle {
            failure = .truncatedMessage
            throw .truncatedMessage
        }
    }

    // MARK: - State machine

    private mutating func advance() throws(HTTPParseError) -> Step {
        while true {
            switch state {
            case .requestLine:
                guard let line = try nextLine(pendingLimit: limits.requestLineBytes + 1, onPendingOverflow: .requestLineTooLong(limit: limits.requestLineBytes)) else {
                    return .needMoreData
                }
                if line.isEmpty {
                    emptyLinesBeforeRequest += 1
                    if emptyLinesBeforeRequest > HTTPRequestParser.maximumEmptyLinesBeforeRequest {
                        throw .invalidRequestLine(reason: "empty lines instead of a request line")
                    }
                    continue
                }
                guard line.count <= limits.requestLineBytes else {
                    throw .requestLineTooLong(limit: limits.requestLineBytes)
                }
                try parseRequestLine(line)
                headers = HTTPHeaders()
                sectionBytes = 0
                sectionFields = 0
                state = .headers

            case .headers:
                guard let (line, size) = try nextFieldLine() else { return .needMoreData }
                if let line {
                    headers.add(try parseField(line, size: size, isFirst: headers.isEmpty))
                } else {
                    if let step = try completeHead() { return step }
                }

            case .body(let remaining):
                let available = buffer.count - index
                let take = min(available, remaining)
                if take > 0 {
                    body.append(contentsOf: buffer[index..<(index + take)])
                    index += take
                    continuePending = false
                }
                if remaining - take == 0 { return .request(completeRequest()) }
                state = .body(remaining: remaining - take)
                return .needMoreData

            case .chunkSize:
                guard let line = try nextLine(pendingLimit: limits.chunkLineBytes + 1, onPendingOverflow: .invalidChunkSize("longer than \(limits.chunkLineBytes) bytes")) else {
                    return .needMoreData
                }
                continuePending = false
                guard line.count <= limits.chunkLineBytes else {
                    throw .invalidChunkSize("longer than \(limits.chunkLineBytes) bytes")
                }
                let size = try parseChunkSize(line)
                if size == 0 {
                    trailers = HTTPHeaders()
                    sectionBytes = 0
                    sectionFields = 0
                    state = .trailers
                } else {
                    state = .chunkData(remaining: size)
                }

            case .chunkData(let remaining):
                let available = buffer.count - index
                let take = min(available, remaining)
                if take > 0 {
                    body.append(contentsOf: buffer[index..<(index + take)])
                    index += take
                }
                if remaining - take == 0 {
                    state = .chunkDataEnd
                } else {
                    state = .chunkData(remaining: remaining - take)
                    return .needMoreData
                }

            case .chunkDataEnd:
                guard index < buffer.count else { return .needMoreData }
                if buffer[index] == HTTPRequestParser.lf {
                    index += 1
                } else if buffer[index] == HTTPRequestParser.cr {
                    guard index + 1 < buffer.count else { return .needMoreData }
                    guard buffer[index + 1] == HTTPRequestParser.lf else { throw .invalidChunkTerminator }
                    index += 2
                } else {
                    throw .invalidChunkTerminator
                }
                scanIndex = index
                state = .chunkSize

            case .trailers:
                guard let (line, size) = try nextFieldLine() else { return .needMoreData }
                if let line {
                    trailers.add(try parseField(line, size: size, isFirst: trailers.isEmpty))
                } else {
                    return .request(completeRequest())
                }
            }
        }
    }

    /// Removes consumed bytes once they dominate the buffer, keeping appends amortised O(1).
    private mutating func compact() {
        if index == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.capacity <= 1 << 16)
            index = 0
            scanIndex = 0
        } else if index >= 1 << 16 && index * 2 >= buffer.count {
            buffer.removeFirst(index)
            scanIndex -= index
            index = 0
        }
    }

    /// The next line's content (terminator removed), or `nil` when no LF is buffered yet.
    ///
    /// - Throws: `onPendingOverflow` when more than `pendingLimit` bytes wait without an LF;
    ///   `bareCarriageReturn` for a CR inside the line.
    private mutating func nextLine(pendingLimit: Int, onPendingOverflow: HTTPParseError) throws(HTTPParseError) -> ArraySlice<UInt8>? {
        let start = index
        let from = max(scanIndex, index)
        let found: Int? = buffer.withUnsafeBufferPointer { pointer -> Int? in
            guard from < pointer.count, let base = pointer.baseAddress else { return nil }
            guard let hit = memchr(base + from, Int32(HTTPRequestParser.lf), pointer.count - from) else { return nil }
            return base.distance(to: hit.assumingMemoryBound(to: UInt8.self))
        }
        guard let newline = found else {
            scanIndex = buffer.count
            if buffer.count - start > pendingLimit { throw onPendingOverflow }
            return nil
        }
        var end = newline
        if end > start && buffer[end - 1] == HTTPRequestParser.cr { end -= 1 }
        index = newline + 1
        scanIndex = index
        let line = buffer[start..<end]
        if line.contains(HTTPRequestParser.cr) { throw .bareCarriageReturn }
        return line
    }

    /// The next field line of a header or trailer section with its size on the wire; an inner
    /// `nil` line is the empty line ending the section; `nil` overall means more bytes are needed.
    private mutating func nextFieldLine() throws(HTTPParseError) -> (ArraySlice<UInt8>?, Int)? {
        let start = index
        let remainingBudget = limits.headerSectionBytes - sectionBytes
        // A pending partial line of p bytes will cost at least p + 1 bytes, unless it is the
        // lone CR of the empty line that ends the section (which is not counted).
        let pending = buffer.count - start
        if pending > 0 && pending > remainingBudget && !(pending == 1 && buffer[start] == HTTPRequestParser.cr) {
            if memchr_in(buffer, from: max(scanIndex, start), byte: HTTPRequestParser.lf) == nil {
                throw .headerSectionTooLarge(limit: limits.headerSectionBytes)
            }
        }
        guard let line = try nextLine(pendingLimit: Int.max, onPendingOverflow: .headerSectionTooLarge(limit: limits.headerSectionBytes)) else {
            return nil
        }
        if line.isEmpty { return (nil, 0) }
        return (line, index - start)
    }

    private func memchr_in(_ bytes: [UInt8], from: Int, byte: UInt8) -> Int? {
        guard from < bytes.count else { return nil }
        return bytes[from...].firstIndex(of: byte)
    }

    // MARK: - Request line (RFC 9112 §3)

    private mutating func parseRequestLine(_ line: ArraySlice<UInt8>) throws(HTTPParseError) {
        guard let firstSpace = line.firstIndex(of: HTTPRequestParser.space) else {
            throw .invalidRequestLine(reason: "fewer than three parts")
        }
        let methodBytes = line[line.startIndex..<firstSpace]
        let afterMethod = line[(firstSpace + 1)...]
        guard let secondSpace = afterMethod.firstIndex(of: HTTPRequestParser.space) else {
            throw .invalidRequestLine(reason: "fewer than three parts")
        }
        let targetBytes = afterMethod[afterMethod.startIndex..<secondSpace]
        let versionBytes = afterMethod[(secondSpace + 1)...]

        guard !methodBytes.isEmpty, methodBytes.allSatisfy(HTTPRequestParser.isTokenByte) else {
            throw .invalidRequestLine(reason: "invalid method")
        }
        guard !targetBytes.isEmpty else { throw .invalidRequestLine(reason: "empty request target") }
        guard !versionBytes.contains(HTTPRequestParser.space) else {
            throw .invalidRequestLine(reason: "more than three parts")
        }
        guard targetBytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw .invalidRequestTarget(String(decoding: targetBytes, as: UTF8.self))
        }
        let versionText = String(decoding: versionBytes, as: UTF8.self)
        let isDigit: (UInt8) -> Bool = { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
        let v = Array(versionBytes)
        guard v.count == 8, v[0..<5].elementsEqual("HTTP/".utf8), isDigit(v[5]), v[6] == UInt8(ascii: "."), isDigit(v[7]) else {
            throw .invalidRequestLine(reason: "invalid version")
        }
        guard let parsedVersion = HTTPVersion(rawValue: versionText) else {
            throw .unsupportedVersion(versionText)
        }
        let methodText = String(decoding: methodBytes, as: UTF8.self)
        guard let parsedMethod = HTTPMethod(rawValue: methodText) else {
            throw .unsupportedMethod(methodText)
        }
        method = parsedMethod
        version = parsedVersion
        target = String(decoding: targetBytes, as: UTF8.self)
    }

    // MARK: - Field lines (RFC 9112 §5, RFC 9110 §5.5)

    private mutating func parseField(_ line: ArraySlice<UInt8>, size: Int, isFirst: Bool) throws(HTTPParseError) -> HTTPHeaders.Field {
        sectionBytes += size
        guard sectionBytes <= limits.headerSectionBytes else {
            throw .headerSectionTooLarge(limit: limits.headerSectionBytes)
        }
        sectionFields += 1
        guard sectionFields <= limits.headerFields else {
            throw .tooManyHeaderFields(limit: limits.headerFields)
        }
        let first = line[line.startIndex]
        if first == HTTPRequestParser.space || first == HTTPRequestParser.tab {
            if isFirst { throw .invalidHeaderField(reason: "whitespace before the first field line") }
            throw .obsoleteLineFolding
        }
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else {
            throw .invalidHeaderField(reason: "missing colon")
        }
        let name = line[line.startIndex..<colon]
        guard !name.isEmpty else { throw .invalidHeaderField(reason: "empty field name") }
        if let last = name.last, last == HTTPRequestParser.space || last == HTTPRequestParser.tab {
            throw .invalidHeaderField(reason: "whitespace before colon")
        }
        guard name.allSatisfy(HTTPRequestParser.isTokenByte) else {
            throw .invalidHeaderField(reason: "invalid field name")
        }
        var value = line[(colon + 1)...]
        while let head = value.first, head == HTTPRequestParser.space || head == HTTPRequestParser.tab { value.removeFirst() }
        while let tail = value.last, tail == HTTPRequestParser.space || tail == HTTPRequestParser.tab { value.removeLast() }
        // field-vchar = VCHAR / obs-text, plus SP and HTAB inside (RFC 9110 §5.5)
        guard value.allSatisfy({ $0 == HTTPRequestParser.tab || ($0 >= 0x20 && $0 != 0x7F) }) else {
            throw .invalidHeaderField(reason: "control character in the value of \(String(decoding: name, as: UTF8.self))")
        }
        return HTTPHeaders.Field(name: String(decoding: name, as: UTF8.self), value: String(decoding: value, as: UTF8.self))
    }

    // MARK: - Message framing (RFC 9112 §6.3)

    /// Validates the head and chooses the framing; returns the request when it has no content.
    private mutating func completeHead() throws(HTTPParseError) -> Step? {
        let hosts = headers.values(for: "Host")
        if version == .http1_1 && hosts.isEmpty { throw .invalidHost(reason: "missing") }
        if hosts.count > 1 { throw .invalidHost(reason: "repeated") }
        if let host = hosts.first, host.utf8.contains(where: { $0 <= 0x20 || $0 == UInt8(ascii: "/") || $0 == 0x7F }) {
            throw .invalidHost(reason: "invalid value \(host)")
        }

        let hasTransferEncoding = headers.contains("Transfer-Encoding")
        let hasContentLength = headers.contains("Content-Length")
        if hasTransferEncoding && hasContentLength { throw .conflictingFraming }

        request = try HTTPRequest(method: method, target: target, version: version, headers: headers)
        body = []
        emptyLinesBeforeRequest = 0

        let expectsContinue = version == .http1_1 && headers.tokens(for: "Expect").contains("100-continue")
        if hasTransferEncoding {
            try validateTransferEncoding()
            pendingBodyBytes = limits.bodyBytes
            continuePending = expectsContinue
            state = .chunkSize
            return nil
        }
        let length = try contentLength()
        guard length <= limits.bodyBytes else { throw .bodyTooLarge(limit: limits.bodyBytes) }
        if length == 0 { return .request(completeRequest()) }
        body.reserveCapacity(min(length, 1 << 20))
        pendingBodyBytes = length
        continuePending = expectsContinue
        state = .body(remaining: length)
        return nil
    }

    private func validateTransferEncoding() throws(HTTPParseError) {
        let joined = headers.values(for: "Transfer-Encoding").joined(separator: ", ")
        guard version == .http1_1 else { throw .invalidTransferEncoding(joined) }
        let codings = headers.tokens(for: "Transfer-Encoding").map { coding in
            coding.split(separator: ";", maxSplits: 1).first.map { $0.trimmingWhitespace() } ?? ""
        }
        guard let last = codings.last, last == "chunked" else { throw .invalidTransferEncoding(joined) }
        if let other = codings.first(where: { $0 != "chunked" }) { throw .unsupportedTransferCoding(other) }
        guard codings.count == 1 else { throw .invalidTransferEncoding(joined) }
    }

    /// The declared content length, 0 when absent; values beyond `Int` saturate (they exceed
    /// any limit anyway).
    private func contentLength() throws(HTTPParseError) -> Int {
        let values = headers.values(for: "Content-Length")
        guard !values.isEmpty else { return 0 }
        var result: Int?
        for element in values.flatMap({ $0.split(separator: ",", omittingEmptySubsequences: false) }) {
            let text = element.trimmingWhitespace()
            guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
                throw .invalidContentLength(values.joined(separator: ", "))
            }
            var number = 0
            for digit in text.utf8 {
                let (times, overflowA) = number.multipliedReportingOverflow(by: 10)
                let (plus, overflowB) = times.addingReportingOverflow(Int(digit - UInt8(ascii: "0")))
                number = (overflowA || overflowB) ? Int.max : plus
            }
            if let result, result != number { throw .conflictingContentLengths(values) }
            result = number
        }
        return result ?? 0
    }

    /// Parses `1*HEXDIG [ BWS ";" chunk-ext ]` (RFC 9112 §7.1, §7.1.1; extensions are ignored).
    private func parseChunkSize(_ line: ArraySlice<UInt8>) throws(HTTPParseError) -> Int {
        let text = String(decoding: line, as: UTF8.self)
        var size = 0
        var digits = 0
        var position = line.startIndex
        while position < line.endIndex, let digit = HTTPRequestParser.hexDigit(line[position]) {
            if size > (Int.max - 15) / 16 { throw .bodyTooLarge(limit: limits.bodyBytes) }
            size = size * 16 + Int(digit)
            digits += 1
            position += 1
        }
        guard digits > 0 else { throw .invalidChunkSize(text) }
        var rest = line[position...]
        while let head = rest.first, head == HTTPRequestParser.space || head == HTTPRequestParser.tab { rest.removeFirst() }
        if let head = rest.first {
            guard head == UInt8(ascii: ";") else { throw .invalidChunkSize(text) }
            guard rest.allSatisfy({ $0 == HTTPRequestParser.tab || ($0 >= 0x20 && $0 != 0x7F) }) else {
                throw .invalidChunkSize(text)
            }
        }
        guard size <= limits.bodyBytes - body.count else { throw .bodyTooLarge(limit: limits.bodyBytes) }
        return size
    }

    private mutating func completeRequest() -> HTTPRequest {
        guard var complete = request else {
            preconditionFailure("request completed before its head was parsed")
        }
        complete.body = body
        complete.trailers = trailers
        request = nil
        pendingBodyBytes = 0
        body = []
        trailers = HTTPHeaders()
        continuePending = false
        state = .requestLine
        return complete
    }

    // MARK: - Character classes

    /// tchar (RFC 9110 §5.6.2).
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
             UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
             UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            true
        default:
            false
        }
    }

    private static func hexDigit(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
