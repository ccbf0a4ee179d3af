import Foundation
import HTTPCore
import Testing

@Suite("CORS (Fetch standard §3.2)")
struct HTTPCORSPolicyTests {
    @Test("origins in canonical form, or refused", arguments: [
        ("https://example.com", "https://example.com"),
        ("HTTPS://Example.COM", "https://example.com"),
        ("https://example.com:443", "https://example.com"),
        ("http://example.com:80", "http://example.com"),
        ("http://localhost:3000", "http://localhost:3000"),
        ("https://example.com:8443", "https://example.com:8443"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("  https://a.b  ", "https://a.b"),
        ("https://example.com/", nil),
        ("https://example.com/path", nil),
        ("https://user@example.com", nil),
        ("https://example.com:0", nil),
        ("https://example.com:65536", nil),
        ("https://example.com:", nil),
        ("https://example.com:12a", nil),
        ("https://", nil),
        ("example.com", nil),
        ("null", nil),
        ("*", nil),
        ("https://exa mple.com", nil),
        ("https://exämple.com", nil),
        ("https://a.com, https://b.com", nil),
        ("https://[::1", nil),
        ("https://[zz]", nil),
        ("1http://a", nil),
        ("", nil),
        (String(repeating: "a", count: 10_000), nil),
    ] as [(String, String?)])
    func origins(text: String, expected: String?) {
        #expect(HTTPCORSPolicy.normalisedOrigin(text) == expected, "\(text.prefix(40))")
    }

    @Test("configured origins: * or http(s) origins; anything else is refused with its text", arguments: [
        (["*"], ["*"], nil),
        (["https://a.com", "*"], ["*"], nil),
        (["https://a.com", "HTTPS://A.com:443", "http://b.com:8080"], ["https://a.com", "http://b.com:8080"], nil),
        (["ftp://a.com"], [], HTTPCORSError.invalidOrigin("ftp://a.com")),
        (["https://a.com/"], [], .invalidOrigin("https://a.com/")),
        (["null"], [], .invalidOrigin("null")),
        ([""], [], .invalidOrigin("")),
    ] as [([String], [String], HTTPCORSError?)])
    func configuration(entries: [String], expected: [String], expectedError: HTTPCORSError?) {
        if let expectedError {
            #expect(throws: expectedError) { try HTTPCORSPolicy(allowedOrigins: entries) }
        } else {
            #expect((try? HTTPCORSPolicy(allowedOrigins: entries))?.allowedOrigins == expected, "\(entries)")
        }
    }

    struct CORSCase: Sendable, CustomTestStringConvertible {
        var name: String
        var origins: [String] = ["https://app.example"]
        var method: HTTPMethod = .get
        var headers: [(String, String)]
        var responseStatus: HTTPStatus = .ok
        var allowOrigin: String?
        var preflightFields: Bool = false
        var testDescription: String { name }
    }

    @Test("which requests get which CORS fields", arguments: [
        CORSCase(name: "no Origin", headers: []),
        CORSCase(name: "allowed origin", headers: [("Origin", "https://app.example")], allowOrigin: "https://app.example"),
        CORSCase(name: "allowed origin, other case and default port", headers: [("Origin", "HTTPS://APP.example:443")], allowOrigin: "https://app.example"),
        CORSCase(name: "other origin", headers: [("Origin", "https://evil.example")]),
        CORSCase(name: "other port", headers: [("Origin", "https://app.example:8443")]),
        CORSCase(name: "other scheme", headers: [("Origin", "http://app.example")]),
        CORSCase(name: "suffix attack", headers: [("Origin", "https://app.example.evil")]),
        CORSCase(name: "null origin", headers: [("Origin", "null")]),
        CORSCase(name: "malformed origin", headers: [("Origin", "https://app.example/\u{1}")]),
        CORSCase(name: "two Origin fields", headers: [("Origin", "https://app.example"), ("Origin", "https://app.example")]),
        CORSCase(name: "origin list", headers: [("Origin", "https://app.example https://evil.example")]),
        CORSCase(name: "any origin", origins: ["*"], headers: [("Origin", "https://evil.example")], allowOrigin: "*"),
        CORSCase(name: "any origin, null", origins: ["*"], headers: [("Origin", "null")], allowOrigin: "*"),
        CORSCase(name: "an error is readable too", headers: [("Origin", "https://app.example")], responseStatus: .notFound,
                 allowOrigin: "https://app.example"),
        CORSCase(name: "preflight", method: .options, headers: [("Origin", "https://app.example"), ("Access-Control-Request-Method", "POST")],
                 responseStatus: .noContent, allowOrigin: "https://app.example", preflightFields: true),
        CORSCase(name: "preflight from another origin", method: .options,
                 headers: [("Origin", "https://evil.example"), ("Access-Control-Request-Method", "POST")], responseStatus: .noContent),
        CORSCase(name: "preflight of a path that is not there", method: .options,
                 headers: [("Origin", "https://app.example"), ("Access-Control-Request-Method", "POST")], responseStatus: .notFound),
        CORSCase(name: "plain OPTIONS with Origin", method: .options, headers: [("Origin", "https://app.example")],
                 responseStatus: .noContent, allowOrigin: "https://app.example"),
    ])
    func fields(_ test: CORSCase) throws {
        let policy = try HTTPCORSPolicy(allowedOrigins: test.origins, maxAge: 600)
        var response = HTTPResponse(status: test.responseStatus, headers: [
            "Content-Type": "application/json", "Server-Timing": "network;dur=1", "X-Puzzle-Id": "abc",
            "Warning": "299 - \"x\"", "Allow": "GET, HEAD, POST, OPTIONS",
        ])
        policy.apply(to: &response, for: makeRequest(test.method, "/v1/solve", headers: test.headers))
        #expect(response.headers["Access-Control-Allow-Origin"] == test.allowOrigin)
        #expect(response.headers.tokens(for: "Vary").contains("origin"))
        #expect(response.headers["Access-Control-Allow-Credentials"] == nil)
        if test.preflightFields {
            #expect(response.headers["Access-Control-Allow-Methods"] == "GET, HEAD, POST, OPTIONS")
            #expect(response.headers.tokens(for: "Access-Control-Allow-Headers").contains("content-type"))
            #expect(response.headers["Access-Control-Max-Age"] == "600")
            #expect(response.headers["Access-Control-Expose-Headers"] == nil)
        } else {
            #expect(response.headers["Access-Control-Allow-Methods"] == nil && response.headers["Access-Control-Max-Age"] == nil)
            if test.allowOrigin != nil {
                let exposed = response.headers.tokens(for: "Access-Control-Expose-Headers")
                #expect(["server-timing", "x-puzzle-id", "warning", "allow"].allSatisfy(exposed.contains), "\(exposed)")
                #expect(!exposed.contains("content-type"), "safelisted fields need no exposing")
            } else {
                #expect(response.headers["Access-Control-Expose-Headers"] == nil)
            }
        }
    }
}
