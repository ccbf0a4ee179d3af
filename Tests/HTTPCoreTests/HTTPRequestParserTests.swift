import HTTPCore
import Testing

/// What a parsed request looks like, for comparisons (`HTTPRequest` is not `Equatable`).
struct RequestSummary: Equatable, CustomStringConvertible {
    var method: String
    var target: String
    var version: String
    var headers: [String]
    var body: [UInt8]
    var trailers: [String]
    var keepAlive: Bool

    init(_ request: HTTPRequest) {
        method = request.method.rawValue
        target = request.target
        version = request.version.rawValue
        headers = request.headers.map { "\($0.name): \($0.value)" }
        body = request.body
        trailers = request.trailers.map { "\($0.name): \($0.value)" }
        keepAlive = request.keepAlive
    }

    var description: String { "\(method) \(target) \(version) \(headers) body=\(body.count) trailers=\(trailers) keepAlive=\(keepAlive)" }
}

/// The outcome of feeding a byte stream to a parser.
struct ParseOutcome: Equatable {
    var requests: [RequestSummary]
    var error: HTTPParseError?
}

/// Feeds `bytes` in the given pieces, draining requests after each piece.
func parse(_ bytes: [UInt8], pieces: [Int]? = nil, limits: HTTPLimits = HTTPLimits()) -> ParseOutcome {
    var parser = HTTPRequestParser(limits: limits)
    var outcome = ParseOutcome(requests: [], error: nil)
    var start = 0
    let sizes = pieces ?? [bytes.count]
    for size in sizes + [0] {
        let end = min(bytes.count, start + size)
        parser.append(bytes[start..<end])
        start = end
        do {
            while case .request(let request) = try parser.next() {
                outcome.requests.append(RequestSummary(request))
            }
        } catch {
            outcome.error = error
            return outcome
        }
    }
    precondition(start == bytes.count, "pieces must cover the input")
    return outcome
}

func bytesOf(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Small limits so oversize cases stay small: line 64, header section 128 bytes, 4 fields, body 32.
let smallLimits = HTTPLimits(requestLineBytes: 64, headerSectionBytes: 128, headerFields: 4, bodyBytes: 32, chunkLineBytes: 16)

struct MalformedCase: CustomStringConvertible, Sendable {
    var name: String
    var bytes: [UInt8]
    var error: HTTPParseError
    var status: Int
    var description: String { name }

    init(_ name: String, _ text: String, _ error: HTTPParseError, _ status: Int) {
        self.init(name, bytesOf(text), error, status)
    }

    init(_ name: String, _ bytes: [UInt8], _ error: HTTPParseError, _ status: Int) {
        self.name = name
        self.bytes = bytes
        self.error = error
        self.status = status
    }
}

let malformedCases: [MalformedCase] = [
    MalformedCase("two-part request line", "GET /\r\nHost: a\r\n\r\n", .invalidRequestLine(reason: "fewer than three parts"), 400),
    MalformedCase("one-part request line", "GET\r\n\r\n", .invalidRequestLine(reason: "fewer than three parts"), 400),
    MalformedCase("double space", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", .invalidRequestLine(reason: "empty request target"), 400),
    MalformedCase("four parts", "GET / HTTP/1.1 x\r\nHost: a\r\n\r\n", .invalidRequestLine(reason: "more than three parts"), 400),
    MalformedCase("version 2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", .unsupportedVersion("HTTP/2.0"), 505),
    MalformedCase("version 0.9", "GET / HTTP/0.9\r\n\r\n", .unsupportedVersion("HTTP/0.9"), 505),
    MalformedCase("version 1.10", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", .invalidRequestLine(reason: "invalid version"), 400),
    MalformedCase("lowercase version", "GET / http/1.1\r\nHost: a\r\n\r\n", .invalidRequestLine(reason: "invalid version"), 400),
    MalformedCase("unknown method", "BREW / HTTP/1.1\r\nHost: a\r\n\r\n", .unsupportedMethod("BREW"), 501),
    MalformedCase("CONNECT", "CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", .unsupportedMethod("CONNECT"), 501),
    MalformedCase("lowercase method", "get / HTTP/1.1\r\nHost: a\r\n\r\n", .unsupportedMethod("get"), 501),
    MalformedCase("method with @", "G@T / HTTP/1.1\r\nHost: a\r\n\r\n", .invalidRequestLine(reason: "invalid method"), 400),
    MalformedCase("non-ASCII garbage", [0xFF, 0xFE, 0x00, 0x41, 0x20, 0x2F, 0x20, 0x0D, 0x0A, 0x0D, 0x0A], .invalidRequestLine(reason: "invalid method"), 400),
    MalformedCase("non-ASCII target", [UInt8]("GET /caf".utf8) + [0xC3, 0xA9] + [UInt8](" HTTP/1.1\r\nHost: a\r\n\r\n".utf8), .invalidRequestTarget("/café"), 400),
    MalformedCase("bad percent escape", "GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n", .invalidRequestTarget("/a%zz"), 400),
    MalformedCase("escape of invalid UTF-8", "GET /a%FF HTTP/1.1\r\nHost: a\r\n\r\n", .invalidRequestTarget("/a%FF"), 400),
    MalformedCase("relative target", "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", .invalidRequestTarget("a/b"), 400),
    MalformedCase("fragment in target", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", .invalidRequestTarget("/a#b"), 400),
    MalformedCase("five empty lines first", "\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", .invalidRequestLine(reason: "empty lines instead of a request line"), 400),
    MalformedCase("header without colon", "GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", .invalidHeaderField(reason: "missing colon"), 400),
    MalformedCase("empty field name", "GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n", .invalidHeaderField(reason: "empty field name"), 400),
    MalformedCase("space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", .invalidHeaderField(reason: "whitespace before colon"), 400),
    MalformedCase("space inside name", "GET / HTTP/1.1\r\nHost: a\r\nX Y: 1\r\n\r\n", .invalidHeaderField(reason: "invalid field name"), 400),
    MalformedCase("whitespace before first field", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", .invalidHeaderField(reason: "whitespace before the first field line"), 400),
    MalformedCase("obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n  2\r\n\r\n", .obsoleteLineFolding, 400),
    MalformedCase("obs-fold with tab", "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\t2\r\n\r\n", .obsoleteLineFolding, 400),
    MalformedCase("control character in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\u{1}b\r\n\r\n", .invalidHeaderField(reason: "control character in the value of X"), 400),
    MalformedCase("bare CR in request line", "GET / HTTP/1.1\rX\r\nHost: a\r\n\r\n", .bareCarriageReturn, 400),
    MalformedCase("bare CR in field", "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", .bareCarriageReturn, 400),
    MalformedCase("missing Host", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", .invalidHost(reason: "missing"), 400),
    MalformedCase("two Host fields", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", .invalidHost(reason: "repeated"), 400),
    MalformedCase("Host with space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", .invalidHost(reason: "invalid value a b"), 400),
    MalformedCase("long request line", "GET /" + String(repeating: "a", count: 100) + " HTTP/1.1\r\nHost: a\r\n\r\n", .requestLineTooLong(limit: 64), 414),
    MalformedCase("long request line without end", "GET /" + String(repeating: "a", count: 100), .requestLineTooLong(limit: 64), 414),
    MalformedCase("header section too large", "GET / HTTP/1.1\r\nHost: a\r\nX: " + String(repeating: "b", count: 200) + "\r\n\r\n", .headerSectionTooLarge(limit: 128), 431),
    MalformedCase("header section too large, unterminated", "GET / HTTP/1.1\r\nHost: a\r\nX: " + String(repeating: "b", count: 200), .headerSectionTooLarge(limit: 128), 431),
    MalformedCase("too many fields", "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", .tooManyHeaderFields(limit: 4), 431),
    MalformedCase("body over limit", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 33\r\n\r\n", .bodyTooLarge(limit: 32), 413),
    MalformedCase("1 GiB body", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1073741824\r\n\r\n", .bodyTooLarge(limit: 32), 413),
    MalformedCase("length beyond Int", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", .bodyTooLarge(limit: 32), 413),
    MalformedCase("CL and TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", .conflictingFraming, 400),
    MalformedCase("two different CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", .conflictingContentLengths(["3", "4"]), 400),
    MalformedCase("CL list of different", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\nabcd", .conflictingContentLengths(["3, 4"]), 400),
    MalformedCase("negative CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", .invalidContentLength("-1"), 400),
    MalformedCase("non-numeric CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n", .invalidContentLength("abc"), 400),
    MalformedCase("plus-signed CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc", .invalidContentLength("+3"), 400),
    MalformedCase("empty CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", .invalidContentLength(""), 400),
    MalformedCase("TE gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", .invalidTransferEncoding("gzip"), 400),
    MalformedCase("TE gzip then chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", .unsupportedTransferCoding("gzip"), 501),
    MalformedCase("TE chunked twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", .invalidTransferEncoding("chunked, chunked"), 400),
    MalformedCase("TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", .invalidTransferEncoding("chunked"), 400),
    MalformedCase("chunk size not hex", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", .invalidChunkSize("zz"), 400),
    MalformedCase("chunk size with junk", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3x\r\nabc\r\n", .invalidChunkSize("3x"), 400),
    MalformedCase("empty chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\r\n", .invalidChunkSize(""), 400),
    MalformedCase("chunk size line too long", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;" + String(repeating: "e", count: 40), .invalidChunkSize("longer than 16 bytes"), 400),
    MalformedCase("chunk size overflow", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n", .bodyTooLarge(limit: 32), 413),
    MalformedCase("chunks over limit", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n14\r\n" + String(repeating: "x", count: 20) + "\r\n0d\r\n", .bodyTooLarge(limit: 32), 413),
    MalformedCase("chunk size line too long, terminated", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;" + String(repeating: "e", count: 15) + "\r\nabc\r\n", .invalidChunkSize("longer than 16 bytes"), 400),
    MalformedCase("chunk data without CRLF", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n", .invalidChunkTerminator, 400),
    MalformedCase("too many trailers", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n", .tooManyHeaderFields(limit: 4), 431),
    MalformedCase("trailer obs-fold", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: 1\r\n 2\r\n\r\n", .obsoleteLineFolding, 400),
]

@Suite("HTTP request parser")
struct HTTPRequestParserTests {
    @Test("malformed request gives the exact error and status", arguments: malformedCases)
    func malformed(_ testCase: MalformedCase) {
        let whole = parse(testCase.bytes, limits: smallLimits)
        #expect(whole.requests.isEmpty)
        #expect(whole.error == testCase.error)
        #expect(whole.error?.status.code == testCase.status)
        let byteByByte = parse(testCase.bytes, pieces: Array(repeating: 1, count: testCase.bytes.count), limits: smallLimits)
        #expect(byteByByte == whole)
    }

    @Test("a failed parser stays failed")
    func failureIsSticky() {
        var parser = HTTPRequestParser()
        parser.append(bytesOf("GET / HTTP/9.9\r\n\r\n"))
        #expect(throws: HTTPParseError.unsupportedVersion("HTTP/9.9")) { try parser.next() }
        parser.append(bytesOf("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
        #expect(throws: HTTPParseError.unsupportedVersion("HTTP/9.9")) { try parser.next() }
    }

    @Test("end of input inside a request is a truncated message")
    func truncated() throws {
        var parser = HTTPRequestParser()
        parser.append(bytesOf("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc"))
        guard case .needMoreData = try parser.next() else {
            Issue.record("a partial body produced a request")
            return
        }
        #expect(parser.phase == .body)
        #expect(throws: HTTPParseError.truncatedMessage) { try parser.finish() }

        var idle = HTTPRequestParser()
        idle.append(bytesOf("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
        guard case .request = try idle.next() else {
            Issue.record("a complete request was not returned")
            return
        }
        #expect(idle.phase == .idle)
        try idle.finish()
    }

    @Test("limits are inclusive: exactly at each limit is accepted, one more byte is not")
    func limitBoundaries() {
        // request line of exactly 64 bytes: "GET /" + n + " HTTP/1.1" = 14 + n
        let exactLine = "GET /" + String(repeating: "a", count: 50) + " HTTP/1.1"
        #expect(exactLine.utf8.count == 64)
        #expect(parse(bytesOf(exactLine + "\r\nHost: a\r\n\r\n"), limits: smallLimits).requests.count == 1)
        let longLine = "GET /" + String(repeating: "a", count: 51) + " HTTP/1.1"
        #expect(parse(bytesOf(longLine + "\r\nHost: a\r\n\r\n"), limits: smallLimits).error == .requestLineTooLong(limit: 64))

        // header section: "Host: a\r\n" is 9 bytes, "X: " + n + "\r\n" is 5 + n: total 14 + n
        let exactHeaders = "GET / HTTP/1.1\r\nHost: a\r\nX: " + String(repeating: "b", count: 114) + "\r\n\r\n"
        #expect(parse(bytesOf(exactHeaders), limits: smallLimits).requests.count == 1)
        let overHeaders = "GET / HTTP/1.1\r\nHost: a\r\nX: " + String(repeating: "b", count: 115) + "\r\n\r\n"
        #expect(parse(bytesOf(overHeaders), limits: smallLimits).error == .headerSectionTooLarge(limit: 128))
        #expect(parse(bytesOf(overHeaders), pieces: Array(repeating: 1, count: overHeaders.utf8.count), limits: smallLimits).error == .headerSectionTooLarge(limit: 128))
        #expect(parse(bytesOf(exactHeaders), pieces: Array(repeating: 1, count: exactHeaders.utf8.count), limits: smallLimits).requests.count == 1)

        let fourFields = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"
        #expect(parse(bytesOf(fourFields), limits: smallLimits).requests.count == 1)

        let exactBody = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 32\r\n\r\n" + String(repeating: "z", count: 32)
        #expect(parse(bytesOf(exactBody), limits: smallLimits).requests.first?.body.count == 32)
        let exactChunks = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n" + String(repeating: "y", count: 16)
            + "\r\n10\r\n" + String(repeating: "y", count: 16) + "\r\n0\r\n\r\n"
        #expect(parse(bytesOf(exactChunks), limits: smallLimits).requests.first?.body.count == 32)
    }

    @Test("a simple GET with query parameters")
    func simpleGet() throws {
        var parser = HTTPRequestParser()
        parser.append(bytesOf("GET /v1/puzzles/a%20b/soft?tau=0.5&name=x%2By+z&flag HTTP/1.1\r\nHost: example.com\r\nAccept:  */* \t\r\n\r\n"))
        guard case .request(let request) = try parser.next() else {
            Issue.record("no request")
            return
        }
        #expect(request.method == .get)
        #expect(request.version == .http1_1)
        #expect(request.rawPath == "/v1/puzzles/a%20b/soft")
        #expect(request.path == "/v1/puzzles/a b/soft")
        #expect(request.pathSegments == ["v1", "puzzles", "a b", "soft"])
        #expect(request.query == "tau=0.5&name=x%2By+z&flag")
        #expect(request.queryParameters == ["tau": "0.5", "name": "x+y z", "flag": ""])
        #expect(request.headers["accept"] == "*/*")
        #expect(request.headers["HOST"] == "example.com")
        #expect(request.keepAlive)
        #expect(request.body.isEmpty)
    }

    @Test("persistence follows the version and Connection", arguments: [
        ("GET / HTTP/1.1\r\nHost: a\r\n\r\n", true),
        ("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false),
        ("GET / HTTP/1.1\r\nHost: a\r\nConnection: TE, Close\r\n\r\n", false),
        ("GET / HTTP/1.0\r\n\r\n", false),
        ("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
        ("GET / HTTP/1.0\r\nConnection: Keep-Alive, close\r\n\r\n", false),
    ])
    func persistence(_ text: String, _ keepAlive: Bool) {
        let outcome = parse(bytesOf(text))
        #expect(outcome.error == nil)
        #expect(outcome.requests.map(\.keepAlive) == [keepAlive])
    }

    @Test("chunked content with extensions and trailers")
    func chunked() {
        let text = "POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"
            + "4;ext=1\r\nWiki\r\n5 ; name=\"q\"\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0;last\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n"
        let outcome = parse(bytesOf(text))
        #expect(outcome.error == nil)
        #expect(outcome.requests.count == 1)
        #expect(outcome.requests.first?.body == bytesOf("Wikipedia in\r\n\r\nchunks."))
        #expect(outcome.requests.first?.trailers == ["X-Checksum: abc", "X-Other: 1"])
    }

    @Test("accepted variants: bare LF, leading empty lines, repeated equal lengths, absolute form")
    func variants() {
        let bareLF = parse(bytesOf("GET /x HTTP/1.1\nHost: a\n\n"))
        #expect(bareLF.requests.map(\.target) == ["/x"])
        let leading = parse(bytesOf("\r\n\r\nGET /y HTTP/1.1\r\nHost: a\r\n\r\n"))
        #expect(leading.requests.map(\.target) == ["/y"])
        let folded = parse(bytesOf("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 003, 3\r\n\r\nabc"))
        #expect(folded.requests.first?.body == bytesOf("abc"))
        var parser = HTTPRequestParser()
        parser.append(bytesOf("GET http://example.com:8080/p/q?r=1 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"))
        if case .request(let request)? = try? parser.next() {
            #expect(request.path == "/p/q")
            #expect(request.queryParameters == ["r": "1"])
        } else {
            Issue.record("absolute-form target rejected")
        }
    }

    static let pipelined = bytesOf(
        "GET /first HTTP/1.1\r\nHost: a\r\n\r\n"
        + "POST /second HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
        + "PUT /third HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n"
        + "GET /fourth HTTP/1.0\r\n\r\n")

    @Test("pipelined requests come out in order")
    func pipelinedInOneBuffer() {
        let outcome = parse(HTTPRequestParserTests.pipelined)
        #expect(outcome.error == nil)
        #expect(outcome.requests.map(\.target) == ["/first", "/second", "/third", "/fourth"])
        #expect(outcome.requests.map(\.method) == ["GET", "POST", "PUT", "GET"])
        #expect(outcome.requests.map(\.body) == [[], bytesOf("hello"), bytesOf("abc"), []])
        #expect(outcome.requests.map(\.keepAlive) == [true, true, true, false])
    }

    @Test("splitting the input anywhere gives the same requests")
    func everySplit() {
        let bytes = HTTPRequestParserTests.pipelined
        let whole = parse(bytes)
        #expect(whole.requests.count == 4)
        #expect(parse(bytes, pieces: Array(repeating: 1, count: bytes.count)) == whole)
        for split in 0...bytes.count {
            let outcome = parse(bytes, pieces: [split, bytes.count - split])
            #expect(outcome == whole, "split at \(split)")
        }
    }

    @Test("phase reports where the parser is")
    func phases() throws {
        var parser = HTTPRequestParser()
        #expect(parser.phase == .idle)
        parser.append(bytesOf("POST / HTTP/1.1\r\nHost: a\r\n"))
        _ = try parser.next()
        #expect(parser.phase == .head)
        parser.append(bytesOf("Content-Length: 2\r\nExpect: 100-continue\r\n\r\n"))
        _ = try parser.next()
        #expect(parser.phase == .body)
        let first = parser.takeContinueRequest()
        let second = parser.takeContinueRequest()
        #expect(first)
        #expect(!second)
        parser.append(bytesOf("ok"))
        guard case .request(let request) = try parser.next() else {
            Issue.record("no request")
            return
        }
        #expect(request.body == bytesOf("ok"))
        #expect(parser.phase == .idle)
        #expect(parser.bufferedByteCount == 0)
    }

    @Test("percent decoding and query parsing helpers")
    func helpers() {
        #expect(HTTPRequest.percentDecode("a%2Fb%20c+d") == "a/b c+d")
        #expect(HTTPRequest.percentDecode("a+b", plusAsSpace: true) == "a b")
        #expect(HTTPRequest.percentDecode("%E2%82%AC") == "€")
        #expect(HTTPRequest.percentDecode("%") == nil)
        #expect(HTTPRequest.percentDecode("%4") == nil)
        #expect(HTTPRequest.percentDecode("%C3") == nil)
        let items = HTTPRequest.parseQuery("a=1&b=&&c&a=2") ?? []
        #expect(items.map(\.name) == ["a", "b", "c", "a"])
        #expect(items.map(\.value) == ["1", "", "", "2"])
    }
}
