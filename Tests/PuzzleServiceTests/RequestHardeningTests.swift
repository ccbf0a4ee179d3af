import Foundation
import HTTPCore
import PuzzleService
import TensorKit
import Testing

@Suite("Hostile requests: bounded echoes, JSON errors that name the field, HEAD without side effects")
struct RequestHardeningTests {
    /// A valid solve body of four constant pieces, with `extra` spliced in as more members.
    private static func solveBody(_ extra: String) -> String {
        let piece = "[" + Array(repeating: "[" + Array(repeating: "0.5", count: 14).joined(separator: ",") + "]", count: 14)
            .joined(separator: ",") + "]"
        return "{\"pieces\": [\(Array(repeating: piece, count: 4).joined(separator: ","))]\(extra)}"
    }

    static let jsonCases: [(name: String, body: String, message: String)] = [
        ("a fraction for an integer", solveBody(", \"iterations\": 2.5"),
         "invalid JSON body: iterations: expected a whole number, found 2.5"),
        ("2^64 for an integer", solveBody(", \"iterations\": 18446744073709551616"),
         "invalid JSON body: iterations: 1.8446744073709552e+19 is beyond the range of a 64-bit integer"),
        ("a number beyond float64", solveBody(", \"iterations\": 1e309"),
         "invalid JSON body: iterations: the number 1e309 is beyond the range of float64"),
        ("a number beyond float64 in an array", "{\"pieces\": [[[0.5, -2e400]]]}",
         "invalid JSON body: pieces[0][0][1]: the number -2e400 is beyond the range of float64"),
        ("a string for an integer", solveBody(", \"iterations\": \"20\""),
         "invalid JSON body: iterations: expected Int"),
        ("a duplicate member", solveBody(", \"tau\": 1, \"tau\": 0.01"),
         "invalid JSON body: tau: duplicate member name (each name may appear once in an object)"),
        ("a duplicate member spelt with an escape", solveBody(", \"model\": \"a\", \"mod\\u0065l\": \"b\""),
         "invalid JSON body: model: duplicate member name (each name may appear once in an object)"),
        ("a syntax error", "{\"pieces\": [1, 2,, 3]}", "invalid JSON body: unexpected character at byte 17"),
        ("a truncated body", "{\"pieces\": [1, 2", "invalid JSON body: unexpected end of the body at byte 16"),
        ("trailing content", "{\"image\": \"x\"} {}", "invalid JSON body: content after the JSON value at byte 15"),
        ("deep nesting", String(repeating: "[", count: 100_000), "invalid JSON body: nesting deeper than 512 at byte 512"),
    ]

    @Test("JSON errors say which field is wrong and why", arguments: jsonCases.indices)
    func jsonErrorsNameTheField(index: Int) throws {
        let (name, body, message) = Self.jsonCases[index]
        try withService(models: [try intensityModel(grid: 2)]) { port, _ in
            let reply = try request("POST", "/v1/solve", port: port, headers: ["Content-Type": "application/json"],
                                    body: Array(body.utf8))
            #expect(reply.status == 400, "\(name): \(reply.text)")
            #expect(reply.errorCode == "invalid_json", "\(name)")
            #expect((reply.json["error"] as? [String: Any])?["message"] as? String == message, "\(name): \(reply.text)")
        }
    }

    @Test("a valid body with the same fields still solves")
    func validBodySolves() throws {
        try withService(models: [try intensityModel(grid: 2)]) { port, _ in
            let reply = try request("POST", "/v1/solve", port: port, headers: ["Content-Type": "application/json"],
                                    body: Array(Self.solveBody(", \"iterations\": 30, \"tau\": 1e0, \"model\": \"intensity-2x2\"").utf8))
            #expect(reply.status == 200, "\(reply.text)")
        }
    }

    @Test("JSONCheck accepts exactly what JSONSerialization accepts on mutated documents (no duplicates, finite numbers)")
    func checkAgreesWithFoundation() throws {
        let documents = [
            #"{"a": [1, 2.5, -3e2, true, false, null, "x\"y\\z\u00e9"], "b": {"c": {}}, "d": []}"#,
            #"[{"pieces": [[0, 1], [1, 0]]}, "s", 0, -0.0e+1]"#,
        ]
        var generator = SeededGenerator(seed: 5)
        let alphabet = Array(#"{}[],:"\0123456789.eE+-truefalsn "#.utf8)
        var compared = 0
        for document in documents {
            let original = Array(document.utf8)
            for trial in 0..<3000 {
                var bytes = original
                let edits = 1 + Int(generator.next() % 3)
                for _ in 0..<edits {
                    let position = Int(generator.next() % UInt64(bytes.count))
                    switch generator.next() % 3 {
                    case 0: bytes.remove(at: position)
                    case 1: bytes.insert(alphabet[Int(generator.next() % UInt64(alphabet.count))], at: position)
                    default: bytes[position] = alphabet[Int(generator.next() % UInt64(alphabet.count))]
                    }
                    if bytes.isEmpty { bytes = [UInt8(ascii: "[")] }
                }
                let foundation = (try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])) != nil
                let ours: String?
                do {
                    try JSONCheck.check(bytes)
                    ours = nil
                } catch {
                    ours = error.description
                }
                // Duplicates, out-of-range numbers and trailing commas (`[1, ]`, which RFC 8259's
                // grammar does not allow) are refused by design where Foundation is lax.
                if let ours, ours.contains("duplicate member") || ours.contains("beyond the range") { continue }
                if ours != nil, foundation, Self.hasTrailingComma(bytes) { continue }
                compared += 1
                #expect((ours == nil) == foundation,
                        "seed 5 trial \(trial): \(String(decoding: bytes, as: UTF8.self)) ours: \(ours ?? "valid"), Foundation: \(foundation)")
            }
        }
        #expect(compared > 4000)
    }

    /// Whether a `,` is followed, after white space, by `]` or `}` outside strings.
    private static func hasTrailingComma(_ bytes: [UInt8]) -> Bool {
        var inString = false, escaped = false, lastSignificant: UInt8 = 0
        for byte in bytes {
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            if byte == UInt8(ascii: "\"") { inString = true }
            if [UInt8(ascii: "]"), UInt8(ascii: "}")].contains(byte), lastSignificant == UInt8(ascii: ",") { return true }
            if ![0x20, 0x09, 0x0A, 0x0D].contains(byte) { lastSignificant = byte }
        }
        return false
    }

    @Test("error answers repeat at most a bounded prefix of what the client sent")
    func errorsDoNotEchoHugeInput() throws {
        let huge = String(repeating: "m", count: 5 << 20)
        try withService(models: [try intensityModel(grid: 2)]) { port, _ in
            let cases: [(target: String, code: String)] = [
                ("/v1/models/\(huge)", "model_not_found"),
                ("/v1/solve?model=\(huge)", "model_not_found"),
                ("/v1/puzzles/\(huge)", "puzzle_not_found"),
                ("/v1/solve?tau=\(huge)", "invalid_parameter"),
            ]
            for (target, code) in cases {
                let method = target.hasPrefix("/v1/solve") ? "POST" : "GET"
                let body = method == "POST" ? Array(Self.solveBody("").utf8) : []
                let reply = try request(method, target, port: port,
                                        headers: method == "POST" ? ["Content-Type": "application/json"] : [:], body: body)
                // A 5 MB target may be refused by the HTTP layer as too long (414); either way the
                // answer stays small.
                #expect(reply.status == 404 || reply.status == 400 || reply.status == 414, "\(code): \(reply.status)")
                if reply.status != 414 { #expect(reply.errorCode == code) }
                #expect(reply.body.count < 2048, "\(code): \(reply.body.count) bytes")
            }
            let reply = try request("POST", "/v1/solve", port: port, headers: ["Content-Type": "application/json"],
                                    body: Array(Self.solveBody(", \"model\": \"\(huge)\"").utf8))
            #expect(reply.status == 404)
            #expect(reply.errorCode == "model_not_found")
            #expect(reply.body.count < 2048, "\(reply.body.count) bytes")
            let message = (reply.json["error"] as? [String: Any])?["message"] as? String ?? ""
            #expect(message.hasPrefix("no model named '\(String(repeating: "m", count: ServiceError.excerptLength))… (5242880 bytes)'"), "\(message)")
        }
    }

    @Test("HEAD on a sample answers its headers without making or storing a puzzle")
    func headDoesNoWork() throws {
        let sampleSet = try SampleSet(directory: Fixtures.samples)
        try withService(models: [try intensityModel(grid: 2)], samples: sampleSet) { port, _ in
            func storeEntries() throws -> Int {
                let metrics = try get("/metrics", port: port).text
                let line = metrics.split(separator: "\n").first { $0.hasPrefix("jigsaw_puzzle_store_entries ") }
                return Int(line?.split(separator: " ").last ?? "") ?? -1
            }
            #expect(try storeEntries() == 0)
            let head = try request("HEAD", "/v1/samples/3?dataset=mnist", port: port)
            #expect(head.status == 200)
            #expect(head.headers["content-type"] == "application/json" || head.headers["Content-Type"] == "application/json")
            #expect(head.body.isEmpty)
            #expect(try storeEntries() == 0)
            // Its checks still run: a missing sample is a 404 on HEAD too.
            #expect(try request("HEAD", "/v1/samples/100?dataset=mnist", port: port).status == 404)
            #expect(try get("/v1/samples/3?dataset=mnist", port: port).status == 200)
            #expect(try storeEntries() == 1)
        }
    }
}
