import Foundation
import HTTPCore
import Testing

@Suite("Entity tags, HTTP dates and conditional requests (RFC 9110 §8.8.3, §5.6.7, §13)")
struct HTTPConditionalRequestTests {
    @Test("entity tags parse, or are refused", arguments: [
        ("\"xyzzy\"", HTTPEntityTag(opaque: "xyzzy")),
        ("W/\"xyzzy\"", HTTPEntityTag(opaque: "xyzzy", isWeak: true)),
        ("  \"a-1\"  ", HTTPEntityTag(opaque: "a-1")),
        ("\"\"", HTTPEntityTag(opaque: "")),
        ("xyzzy", nil),
        ("\"unterminated", nil),
        ("w/\"lower\"", nil),
        ("\"in\"side\"", nil),
        ("\"sp ace\"", nil),
        ("W/", nil),
        ("\"", nil),
        ("", nil),
    ] as [(String, HTTPEntityTag?)])
    func entityTags(text: String, expected: HTTPEntityTag?) {
        #expect(HTTPEntityTag(parsing: text) == expected, "\(text)")
    }

    @Test("content-hash tags: equal bytes give equal tags, any change a new one")
    func contentHash() {
        let bytes = Array("body { color: red }".utf8)
        #expect(HTTPEntityTag.strong(hashing: bytes) == HTTPEntityTag.strong(hashing: bytes))
        #expect(!HTTPEntityTag.strong(hashing: bytes).isWeak)
        var changed = bytes
        changed[5] ^= 1
        #expect(HTTPEntityTag.strong(hashing: changed) != HTTPEntityTag.strong(hashing: bytes))
        #expect(HTTPEntityTag.strong(hashing: bytes + [0]) != HTTPEntityTag.strong(hashing: bytes))
        #expect(HTTPEntityTag(parsing: HTTPEntityTag.strong(hashing: bytes).headerValue) == HTTPEntityTag.strong(hashing: bytes))
    }

    @Test("If-None-Match lists: *, tags with commas inside, malformed parts skipped", arguments: [
        (["*"], HTTPEntityTagCondition.any),
        (["\"a\", W/\"b\""], .tags([HTTPEntityTag(opaque: "a"), HTTPEntityTag(opaque: "b", isWeak: true)])),
        (["\"a,b\""], .tags([HTTPEntityTag(opaque: "a,b")])),
        (["\"a\"", "\"b\""], .tags([HTTPEntityTag(opaque: "a"), HTTPEntityTag(opaque: "b")])),
        (["junk, \"a\", more junk"], .tags([HTTPEntityTag(opaque: "a")])),
        (["Wx\"a\""], nil),
        (["junk"], nil),
        ([""], nil),
        (["\"unterminated"], nil),
        (["\"ok\", \"unterminated"], .tags([HTTPEntityTag(opaque: "ok")])),
        ([",,,"], nil),
        ([String(repeating: "\"", count: 10_001)], .tags(Array(repeating: HTTPEntityTag(opaque: ""), count: 5000))),
    ] as [([String], HTTPEntityTagCondition?)])
    func noneMatchLists(fields: [String], expected: HTTPEntityTagCondition?) {
        #expect(HTTPEntityTagCondition(fieldValues: fields) == expected, "\(fields.map { $0.prefix(40) })")
    }

    @Test("the three date forms a recipient must accept, and malformed dates", arguments: [
        ("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_777),
        ("Sunday, 06-Nov-94 08:49:37 GMT", 784_111_777),
        ("Sun Nov  6 08:49:37 1994", 784_111_777),
        ("Sun Nov 6 08:49:37 1994", 784_111_777),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0),
        ("Tue, 29 Feb 2028 23:59:59 GMT", 1_835_481_599),
        ("Sun, 06 Nov 1994 08:49:37 UTC", nil),
        ("Sun, 6 Nov 1994 08:49:37 GMT", nil),
        ("Sun, 06 Nox 1994 08:49:37 GMT", nil),
        ("Sun, 31 Feb 1994 08:49:37 GMT", nil),
        ("Sun, 06 Nov 1994 24:00:00 GMT", nil),
        ("Sun, 06 Nov 1994 08:49 GMT", nil),
        ("Sun, 06 Nov 1969 08:49:37 GMT", nil),
        ("Sun, 06 Nov 99999 08:49:37 GMT", nil),
        ("Sunday, 06-Nov-1994 08:49:37 GMT", nil),
        ("1994-11-06T08:49:37Z", nil),
        ("", nil),
        ("-1", nil),
        (String(repeating: "Sun, ", count: 100), nil),
    ] as [(String, Int?)])
    func dates(text: String, expected: Int?) {
        let parsed = HTTPDate.parse(text, now: Date(timeIntervalSince1970: 1_800_000_000))
        #expect(parsed.map { Int($0.timeIntervalSince1970) } == expected, "\(text)")
    }

    @Test("formatting and parsing an IMF-fixdate round-trips")
    func dateRoundTrip() {
        for seconds in stride(from: 0, to: 4_000_000_000, by: 123_456_789) {
            let date = Date(timeIntervalSince1970: TimeInterval(seconds))
            #expect(HTTPDate.parse(HTTPDate.format(date)) == date, "\(seconds)")
        }
    }

    struct ConditionalCase: Sendable, CustomTestStringConvertible {
        var name: String
        var method: HTTPMethod = .get
        var ifNoneMatch: String?
        var ifModifiedSince: String?
        var status: HTTPStatus = .ok
        var notModified: Bool
        var testDescription: String { name }
    }

    // The response has ETag "v2" and Last-Modified Sun, 06 Nov 1994 08:49:37 GMT.
    @Test("when a GET is answered 304", arguments: [
        ConditionalCase(name: "no condition", notModified: false),
        ConditionalCase(name: "matching tag", ifNoneMatch: "\"v2\"", notModified: true),
        ConditionalCase(name: "matching tag, weak comparison", ifNoneMatch: "W/\"v2\"", notModified: true),
        ConditionalCase(name: "tag in a list", ifNoneMatch: "\"v1\", \"v2\"", notModified: true),
        ConditionalCase(name: "other tag", ifNoneMatch: "\"v1\"", notModified: false),
        ConditionalCase(name: "star", ifNoneMatch: "*", notModified: true),
        ConditionalCase(name: "HEAD", method: .head, ifNoneMatch: "\"v2\"", notModified: true),
        ConditionalCase(name: "POST is not a cacheable read", method: .post, ifNoneMatch: "\"v2\"", notModified: false),
        ConditionalCase(name: "not a 200", ifNoneMatch: "\"v2\"", status: .notFound, notModified: false),
        ConditionalCase(name: "If-None-Match wins over a matching If-Modified-Since", ifNoneMatch: "\"v1\"",
                        ifModifiedSince: "Sun, 06 Nov 1994 08:49:37 GMT", notModified: false),
        ConditionalCase(name: "If-None-Match wins over an old If-Modified-Since", ifNoneMatch: "\"v2\"",
                        ifModifiedSince: "Sat, 01 Jan 1994 00:00:00 GMT", notModified: true),
        ConditionalCase(name: "same second", ifModifiedSince: "Sun, 06 Nov 1994 08:49:37 GMT", notModified: true),
        ConditionalCase(name: "later", ifModifiedSince: "Mon, 07 Nov 1994 08:49:37 GMT", notModified: true),
        ConditionalCase(name: "earlier", ifModifiedSince: "Sun, 06 Nov 1994 08:49:36 GMT", notModified: false),
        ConditionalCase(name: "asctime form", ifModifiedSince: "Sun Nov  6 08:49:37 1994", notModified: true),
        ConditionalCase(name: "a date in the future is ignored", ifModifiedSince: "Fri, 01 Jan 2100 00:00:00 GMT", notModified: false),
        ConditionalCase(name: "a malformed date is ignored", ifModifiedSince: "yesterday", notModified: false),
        ConditionalCase(name: "a malformed If-None-Match is ignored, If-Modified-Since decides", ifNoneMatch: "garbage",
                        ifModifiedSince: "Sun, 06 Nov 1994 08:49:37 GMT", notModified: true),
        ConditionalCase(name: "a malformed If-None-Match alone", ifNoneMatch: "\"\u{1}\"", notModified: false),
    ])
    func notModified(_ test: ConditionalCase) {
        var headers: [(String, String)] = []
        if let value = test.ifNoneMatch { headers.append(("If-None-Match", value)) }
        if let value = test.ifModifiedSince { headers.append(("If-Modified-Since", value)) }
        let request = makeRequest(test.method, "/file", headers: headers)
        let response = HTTPResponse(status: test.status, headers: [
            "ETag": "\"v2\"", "Last-Modified": "Sun, 06 Nov 1994 08:49:37 GMT", "Content-Type": "text/plain",
        ], body: Array("content".utf8))
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        #expect(HTTPConditionalRequest.isNotModified(request: request, response: response, now: now) == test.notModified)
    }

    @Test("a 304 keeps the cache's fields, drops the content and declares the 200's length")
    func notModifiedResponse() {
        let response = HTTPResponse(status: .ok, headers: [
            "ETag": "\"v2\"", "Cache-Control": "no-cache", "Vary": "Accept-Encoding", "Content-Type": "text/html",
            "Server-Timing": "x;dur=1", "Last-Modified": "Sun, 06 Nov 1994 08:49:37 GMT",
        ], body: Array(repeating: 65, count: 1234), route: "static")
        let reply = HTTPConditionalRequest.notModified(from: response)
        #expect(reply.status == .notModified)
        #expect(reply.body.isEmpty)
        #expect(reply.headers["ETag"] == "\"v2\"" && reply.headers["Cache-Control"] == "no-cache" && reply.headers["Vary"] == "Accept-Encoding")
        #expect(reply.headers["Content-Type"] == nil && reply.headers["Server-Timing"] == nil)
        #expect(reply.headers["Content-Length"] == "1234")
        #expect(reply.route == "static")
        let wire = String(decoding: HTTPResponseWriter.serialize(reply, requestMethod: .get, requestVersion: .http1_1, keepAlive: true), as: UTF8.self)
        #expect(wire.hasPrefix("HTTP/1.1 304 Not Modified\r\n"))
        #expect(wire.contains("Content-Length: 1234\r\n"))
        #expect(wire.hasSuffix("\r\n\r\n"))
    }
}
