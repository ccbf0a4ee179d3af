import Foundation
import HTTPCore
import Testing

/// SplitMix64 (Steele et al. 2014): a small seeded generator for the tests of this module.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A field value made of the pieces the parsers look for, glued at random.
func hostileFieldValue(_ generator: inout SplitMix64) -> String {
    let pieces = ["gzip", "identity", "*", ";", ",", "q=", "Q=", "0", "1", ".", "5", "999", "=", " ", "\t", "\"", "W/", "w/",
                  "https://", "http://", "app.example", ":", "443", "[", "]", "/", "null", "GMT", "Sun,", "06", "Nov", "1994",
                  "08:49:37", "-", "é", "\u{FFFD}", "x-gzip", "br", "%", "\\"]
    let count = Int.random(in: 0...24, using: &generator)
    return (0..<count).map { _ in pieces[Int.random(in: 0..<pieces.count, using: &generator)] }.joined()
}

@Suite("HTTP conventions never fail on hostile fields")
struct HTTPConventionsRobustnessTests {
    @Test("random Accept-Encoding, If-None-Match, If-Modified-Since and Origin values: the parsers and the policy answer sanely")
    func randomFields() throws {
        let policy = HTTPResponsePolicy(cors: try HTTPCORSPolicy(allowedOrigins: ["https://app.example"]))
        let body = Array(String(repeating: "{\"cell\": 7}", count: 200).utf8)
        for seed in UInt64(0)..<2000 {
            var generator = SplitMix64(seed: seed)
            let values = (0..<4).map { _ in hostileFieldValue(&generator) }
            _ = HTTPAcceptEncoding(fieldValues: [values[0]]).preferredCoding()
            _ = HTTPEntityTagCondition(fieldValues: [values[1]])
            _ = HTTPDate.parse(values[2])
            _ = HTTPCORSPolicy.normalisedOrigin(values[3])
            let request = makeRequest(.get, "/data", headers: [
                ("Accept-Encoding", values[0]), ("If-None-Match", values[1]), ("If-Modified-Since", values[2]), ("Origin", values[3]),
            ])
            let response = HTTPResponse(headers: ["Content-Type": "application/json", "ETag": "\"v1\""], body: body)
            let sent = policy.apply(response, to: request)
            #expect([200, 304].contains(sent.status.code), "seed \(seed): \(values)")
            if sent.status.code == 200 {
                let decoded = sent.headers["Content-Encoding"] == "gzip" ? gunzip(sent.body) : sent.body
                #expect(decoded == body, "seed \(seed): the content survives")
            } else {
                #expect(sent.body.isEmpty, "seed \(seed)")
            }
            let origin = sent.headers["Access-Control-Allow-Origin"]
            #expect(origin == nil || origin == "https://app.example", "seed \(seed): \(values[3])")
        }
    }
}
