import Foundation
import RESP
import Testing

@Suite("Redis URLs")
struct RedisEndpointTests {
    static let valid: [(String, RedisEndpoint)] = [
        ("redis://localhost", RedisEndpoint(host: "localhost")),
        ("redis://127.0.0.1:6380", RedisEndpoint(host: "127.0.0.1", port: 6380)),
        ("REDIS://cache.internal:7000/3", RedisEndpoint(host: "cache.internal", port: 7000, database: 3)),
        ("redis://:s3cret@h:1", RedisEndpoint(host: "h", port: 1, password: "s3cret")),
        ("redis://app:p%40ss%3Aword@h", RedisEndpoint(host: "h", user: "app", password: "p@ss:word")),
        ("redis://secret@h", RedisEndpoint(host: "h", password: "secret")),
        ("redis://[::1]:6379/0", RedisEndpoint(host: "::1")),
        ("redis://[fe80::1]", RedisEndpoint(host: "fe80::1")),
        ("redis://h/", RedisEndpoint(host: "h")),
    ]

    @Test("valid URLs", arguments: valid)
    func parses(url: String, expected: RedisEndpoint) throws {
        #expect(try RedisEndpoint(url: url) == expected)
    }

    static let invalid: [(String, String)] = [
        ("http://h:6379", "expected redis://[[user]:password@]host[:port][/db]"),
        ("rediss://h:6379", "TLS (rediss://) is not supported"),
        ("redis://", "the host is empty"),
        ("redis://:6379", "the host is empty"),
        ("redis://h:0", "the port must be in 1...65535"),
        ("redis://h:65536", "the port must be in 1...65535"),
        ("redis://h:abc", "the port must be in 1...65535"),
        ("redis://h/x", "the database must be a number ≥ 0"),
        ("redis://h/-1", "the database must be a number ≥ 0"),
        ("redis://h?db=1", "query parameters and fragments are not supported"),
        ("redis://:@h", "the password is empty"),
        ("redis://:%zz@h", "bad percent-encoding in the credentials"),
        ("redis://[::1", "unterminated IPv6 address"),
        ("redis://[::1]x", "unexpected 'x' after the IPv6 address"),
        ("redis://h h", "the host 'h h' has characters a host name cannot have"),
    ]

    @Test("invalid URLs name the wrong part (credentials redacted)", arguments: invalid)
    func rejects(url: String, reason: String) {
        let shown = url.replacingOccurrences(of: ":%zz@", with: "***@").replacingOccurrences(of: ":@", with: "***@")
        #expect(throws: RedisError.invalidURL(shown, reason: reason)) { try RedisEndpoint(url: url) }
    }

    @Test("the password never appears in messages")
    func redacts() throws {
        let endpoint = try RedisEndpoint(url: "redis://app:hunter2@h:1/2")
        #expect(endpoint.description == "redis://app:***@h:1/2")
        #expect(throws: RedisError.invalidURL("redis://***@h:0", reason: "the port must be in 1...65535")) {
            try RedisEndpoint(url: "redis://:hunter2@h:0")
        }
    }
}
