import Foundation
import HTTPCore
import Jigsaw
import PuzzleService
import TensorKit
import Testing
import TestSupport

@Suite("Service errors and operations")
struct ServiceErrorTests {
    static let goodPNG: [UInt8] = (try? PNG.encode(scrambledImage(grid: 2, permutation: [2, 0, 3, 1], width: 28, height: 28))) ?? []

    /// A PNG whose header declares 60000 × 50000 RGB pixels and whose data is a stub: only a
    /// decoder that checks the size before allocating answers quickly and without memory.
    static let hugePNG: [UInt8] = {
        let header = PNGBuilder(width: 60_000, height: 50_000, bitDepth: 8, colourType: .rgb, samples: []).bytes()
        return Array(header.prefix(33)) + PNGBuilder.chunk("IDAT", [0x78, 0x01]) + PNGBuilder.chunk("IEND", [])
    }()

    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var method = "POST"
        var target: String
        var contentType: String? = "image/png"
        var body: [UInt8] = []
        var status: Int
        var code: String
        var testDescription: String { name }
    }

    static func json(_ object: Any) -> [UInt8] {
        [UInt8]((try? JSONSerialization.data(withJSONObject: object)) ?? Data())
    }

    static let cases: [Case] = [
        Case(name: "not a PNG", target: "/v1/solve", body: Array("hello".utf8), status: 400, code: "invalid_image"),
        Case(name: "truncated PNG", target: "/v1/solve", body: Array(goodPNG.prefix(60)), status: 400, code: "invalid_image"),
        Case(name: "corrupt PNG data", target: "/v1/solve",
             body: goodPNG.enumerated().map { $0.offset > 40 && $0.offset < goodPNG.count - 20 ? 0x55 : $0.element },
             status: 400, code: "invalid_image"),
        Case(name: "huge declared PNG", target: "/v1/solve", body: hugePNG, status: 413, code: "image_too_large"),
        Case(name: "huge declared PNG to scramble", target: "/v1/scramble?grid=2", body: hugePNG, status: 413, code: "image_too_large"),
        Case(name: "empty body", target: "/v1/solve", body: [], status: 400, code: "empty_body"),
        Case(name: "text body", target: "/v1/solve", contentType: "text/plain", body: Array("x".utf8), status: 415, code: "unsupported_media_type"),
        Case(name: "unknown model", target: "/v1/solve?model=nope", body: goodPNG, status: 404, code: "model_not_found"),
        Case(name: "sorting model for a puzzle", target: "/v1/solve?model=sort-8", body: goodPNG, status: 422, code: "wrong_model_kind"),
        Case(name: "unknown model in JSON", target: "/v1/solve", contentType: "application/json",
             body: json(["pieces": [[[0.5]]], "model": "nope"]), status: 404, code: "model_not_found"),
        Case(name: "tau zero", target: "/v1/solve?tau=0", body: goodPNG, status: 400, code: "invalid_parameter"),
        Case(name: "tau negative", target: "/v1/solve?tau=-1", body: goodPNG, status: 400, code: "invalid_parameter"),
        Case(name: "tau NaN", target: "/v1/solve?tau=nan", body: goodPNG, status: 400, code: "invalid_parameter"),
        Case(name: "tau infinite", target: "/v1/solve?tau=inf", body: goodPNG, status: 400, code: "invalid_parameter"),
        Case(name: "tau text", target: "/v1/solve?tau=cold", body: goodPNG, status: 400, code: "invalid_parameter"),
        Case(name: "tau too small for the scores", target: "/v1/solve?tau=1e-30", body: goodPNG, status: 400, code: "invalid_parameter"),
        Case(name: "tau in JSON", target: "/v1/solve", contentType: "application/json",
             body: json(["pieces": [[[0.5]]], "tau": -2]), status: 400, code: "invalid_parameter"),
        Case(name: "iterations zero", target: "/v1/solve?iterations=0", body: goodPNG, status: 400, code: "invalid_parameter"),
        Case(name: "iterations above the bound", target: "/v1/solve?iterations=1000000", body: goodPNG, status: 400, code: "invalid_parameter"),
        Case(name: "invalid JSON", target: "/v1/solve", contentType: "application/json", body: Array("{\"pieces\": [".utf8),
             status: 400, code: "invalid_json"),
        Case(name: "pieces and image", target: "/v1/solve", contentType: "application/json",
             body: json(["pieces": [[[0.5]]], "image": "AAAA"]), status: 400, code: "invalid_json"),
        Case(name: "piece of the wrong type", target: "/v1/solve", contentType: "application/json",
             body: json(["pieces": [true]]), status: 400, code: "invalid_json"),
        Case(name: "wrong piece count", target: "/v1/solve", contentType: "application/json",
             body: json(["pieces": [[[0.5]], [[0.5]]]]), status: 422, code: "unprocessable_input"),
        Case(name: "ragged piece", target: "/v1/solve", contentType: "application/json",
             body: json(["pieces": [[[0.5, 0.5], [0.5]], [[0.5]], [[0.5]], [[0.5]]]]), status: 422, code: "unprocessable_input"),
        Case(name: "piece value above 1", target: "/v1/solve", contentType: "application/json",
             body: json(["pieces": [[[2.0]], [[0.5]], [[0.5]], [[0.5]]]]), status: 422, code: "unprocessable_input"),
        Case(name: "pieces of different sizes", target: "/v1/solve", contentType: "application/json",
             body: json(["pieces": [[[0.5]], [[0.5, 0.5], [0.5, 0.5]], [[0.5]], [[0.5]]]]), status: 422, code: "unprocessable_input"),
        Case(name: "two-channel piece", target: "/v1/solve", contentType: "application/json",
             body: json(["pieces": [[[[0.5]], [[0.5]]], [[[0.5]], [[0.5]]], [[[0.5]], [[0.5]]], [[[0.5]], [[0.5]]]]]),
             status: 422, code: "unprocessable_input"),
        Case(name: "piece not base64", target: "/v1/solve", contentType: "application/json",
             body: json(["pieces": ["%%%", "%%%", "%%%", "%%%"]]), status: 400, code: "invalid_image"),
        Case(name: "image smaller than the grid", target: "/v1/solve",
             body: (try? PNG.encode(Image(width: 1, height: 5, channels: 1))) ?? [], status: 422, code: "unprocessable_input"),
        Case(name: "scramble grid zero", target: "/v1/scramble?grid=0", body: goodPNG, status: 400, code: "invalid_parameter"),
        Case(name: "scramble grid too large for the image", target: "/v1/scramble?grid=12",
             body: (try? PNG.encode(Image(width: 10, height: 10, channels: 1))) ?? [], status: 422, code: "unprocessable_input"),
        Case(name: "scramble bad seed", target: "/v1/scramble?seed=-4", body: goodPNG, status: 400, code: "invalid_parameter"),
        Case(name: "scramble seed beyond 2^53 - 1", target: "/v1/scramble?seed=9007199254740992", body: goodPNG, status: 400,
             code: "invalid_parameter"),
        Case(name: "sort without numbers", target: "/v1/sort", contentType: "application/json", body: json(["model": "sort-8"]),
             status: 400, code: "invalid_json"),
        Case(name: "sort too many numbers", target: "/v1/sort", contentType: "application/json",
             body: json(["numbers": Array(repeating: 0.5, count: 9)]), status: 422, code: "unprocessable_input"),
        Case(name: "sort with a jigsaw model", target: "/v1/sort", contentType: "application/json",
             body: json(["numbers": [0.5], "model": "intensity-2x2"]), status: 422, code: "wrong_model_kind"),
        Case(name: "sort a PNG", target: "/v1/sort", body: goodPNG, status: 415, code: "unsupported_media_type"),
        Case(name: "unknown puzzle", method: "GET", target: "/v1/puzzles/0123456789abcdef", contentType: nil, status: 404, code: "puzzle_not_found"),
        Case(name: "unknown puzzle soft", method: "GET", target: "/v1/puzzles/none/soft?tau=1", contentType: nil, status: 404, code: "puzzle_not_found"),
        Case(name: "unknown model description", method: "GET", target: "/v1/models/nope", contentType: nil, status: 404, code: "model_not_found"),
        Case(name: "unknown path", method: "GET", target: "/v2/anything", contentType: nil, status: 404, code: "not_found"),
        Case(name: "wrong method", method: "GET", target: "/v1/solve", contentType: nil, status: 405, code: "method_not_allowed"),
        Case(name: "wrong method on a puzzle", method: "DELETE", target: "/v1/puzzles/abc", contentType: nil, status: 405, code: "method_not_allowed"),
        Case(name: "body above the limit", target: "/v1/solve", body: [UInt8](repeating: 7, count: 70_000), status: 413, code: "content_too_large"),
    ]

    @Test("each bad request gets its documented status and JSON error", arguments: cases)
    func errors(_ testCase: Case) throws {
        try withService(models: [try intensityModel(grid: 2), try scalingSortModel(count: 8)],
                        limits: HTTPLimits(bodyBytes: 64 * 1024)) { port, _ in
            var headers: [String: String] = [:]
            if let type = testCase.contentType { headers["Content-Type"] = type }
            let reply = try request(testCase.method, testCase.target, port: port, headers: headers, body: testCase.body)
            #expect(reply.status == testCase.status, "\(testCase.name): \(reply.text)")
            #expect(reply.errorCode == testCase.code, "\(testCase.name): \(reply.text)")
            let message = (reply.json["error"] as? [String: Any])?["message"] as? String ?? ""
            #expect(!message.isEmpty, "\(testCase.name) has a message")
            #expect(reply.headers["content-type"] == "application/json")
            if testCase.status == 405 { #expect(reply.headers["allow"] != nil) }
            // The server is still healthy afterwards.
            #expect(try get("/healthz", port: port).status == 200)
        }
    }

    @Test("a soft request on a stored puzzle validates tau and iterations")
    func softParameters() throws {
        try withService(models: [try intensityModel(grid: 2)]) { port, _ in
            let solved = try request("POST", "/v1/solve", port: port, headers: ["Content-Type": "image/png"], body: Self.goodPNG)
            let id = try #require(solved.json["id"] as? String)
            for (query, code) in [("tau=0", "invalid_parameter"), ("tau=-0.5", "invalid_parameter"), ("tau=NaN", "invalid_parameter"),
                                  ("tau=1e-35", "invalid_parameter"), ("tau=1&iterations=0", "invalid_parameter"),
                                  ("tau=1&iterations=5000", "invalid_parameter"), ("tau=1&format=gif", "invalid_parameter")] {
                let reply = try get("/v1/puzzles/\(id)/soft?\(query)", port: port)
                #expect(reply.status == 400 && reply.errorCode == code, "\(query): \(reply.text)")
            }
            #expect(try get("/v1/puzzles/\(id)/soft", port: port).status == 200, "tau defaults to 1")
        }
    }

    @Test("a solve with a bad format is refused before the network runs and stores nothing")
    func solveFormatCheckedFirst() throws {
        try withService(models: [try intensityModel(grid: 2)]) { port, _ in
            let reply = try request("POST", "/v1/solve?format=gif", port: port, headers: ["Content-Type": "image/png"],
                                    body: Self.goodPNG)
            #expect(reply.status == 400 && reply.errorCode == "invalid_parameter", "\(reply.text)")
            let metrics = try get("/metrics", port: port).text
            #expect(metrics.contains("jigsaw_puzzles_solved_total{model=\"intensity-2x2\"} 0"), "no puzzle was solved: \(metrics)")
            let solved = try request("POST", "/v1/solve?format=json", port: port, headers: ["Content-Type": "image/png"],
                                     body: Self.goodPNG)
            #expect(solved.status == 200)
            #expect(try get("/metrics", port: port).text.contains("jigsaw_puzzles_solved_total{model=\"intensity-2x2\"} 1"))
        }
    }

    @Test("no jigsaw model: readyz and solve answer 503")
    func noModels() throws {
        try withService(models: []) { port, _ in
            #expect(try get("/readyz", port: port).status == 503)
            #expect(try get("/healthz", port: port).status == 200)
            let reply = try request("POST", "/v1/solve", port: port, headers: ["Content-Type": "image/png"], body: Self.goodPNG)
            #expect(reply.status == 503 && reply.errorCode == "no_model")
        }
    }

    @Test("metrics count requests by route and status, solved puzzles and open connections")
    func metrics() throws {
        try withService(models: [try intensityModel(grid: 2)]) { port, _ in
            for _ in 0..<3 {
                _ = try request("POST", "/v1/solve", port: port, headers: ["Content-Type": "image/png"], body: Self.goodPNG)
            }
            _ = try request("POST", "/v1/solve?tau=0", port: port, headers: ["Content-Type": "image/png"], body: Self.goodPNG)
            _ = try get("/nowhere", port: port)
            let reply = try get("/metrics", port: port)
            #expect(reply.status == 200 && reply.headers["content-type"]?.hasPrefix("text/plain") == true)
            let lines = reply.text.split(separator: "\n").map(String.init)
            #expect(lines.contains(#"jigsaw_http_requests_total{route="/v1/solve",method="POST",status="200"} 3"#))
            #expect(lines.contains(#"jigsaw_http_requests_total{route="/v1/solve",method="POST",status="400"} 1"#))
            #expect(lines.contains(#"jigsaw_puzzles_solved_total{model="intensity-2x2"} 3"#))
            #expect(lines.contains(#"jigsaw_puzzle_store_entries 3"#))
            #expect(lines.contains { $0.hasPrefix("jigsaw_http_open_connections ") })
            #expect(lines.contains { $0.hasPrefix(#"jigsaw_http_request_duration_seconds_bucket{route="/v1/solve",method="POST",status_class="2xx",le="+Inf"} 3"#) })
            #expect(lines.contains("# TYPE jigsaw_http_request_duration_seconds histogram"))
        }
    }

    @Test("openapi.json is an OpenAPI 3 document that describes every route and method")
    func openAPI() throws {
        let service = JigsawService(registry: try ModelRegistry(models: []))
        try withService(models: []) { port, _ in
            let reply = try get("/openapi.json", port: port)
            #expect(reply.status == 200)
            let document = reply.json
            #expect((document["openapi"] as? String)?.hasPrefix("3.") == true)
            let paths = try #require(document["paths"] as? [String: [String: Any]])
            for route in service.router.routes {
                let operations = paths[route.pattern]
                #expect(operations != nil, "\(route.pattern) is described")
                #expect(operations?[route.method.rawValue.lowercased()] != nil, "\(route.method.rawValue) \(route.pattern) is described")
            }
            // Every $ref resolves inside the document.
            let text = reply.text
            let components = try #require(document["components"] as? [String: [String: Any]])
            for match in text.matches(of: /"\$ref": "#\/components\/(\w+)\/(\w+)"/) {
                #expect(components[String(match.1)]?[String(match.2)] != nil, "\(match.0) resolves")
            }
        }
    }

    @Test("models list metadata, evaluation figures, the inferred flag and the default")
    func models() throws {
        let torch = try ServiceModel(contentsOfFile: Fixtures.torchModel)
        try withService(models: [try intensityModel(grid: 3), torch, try intensityModel(grid: 2), try scalingSortModel(count: 8)]) { port, _ in
            let reply = try get("/v1/models", port: port)
            #expect(reply.json["default_model"] as? String == "intensity-2x2", "smallest grid, then name")
            let models = try #require(reply.json["models"] as? [[String: Any]])
            #expect(models.map { $0["name"] as? String ?? "" } == ["intensity-2x2", "intensity-3x3", "sort-8", "tutorial-2x2-random"])
            let torchEntry = try #require(models.first { $0["name"] as? String == "tutorial-2x2-random" })
            #expect(torchEntry["inferred"] as? Bool == true)
            #expect((torchEntry["notes"] as? [String])?.isEmpty == false)
            #expect((torchEntry["configuration"] as? [String: Any])?["grid"] as? Int == 2)
            let intensity = try #require(models.first { $0["name"] as? String == "intensity-2x2" })
            #expect((intensity["evaluation"] as? [String: Any])?["kendall_tau"] as? Double == 1)
            #expect((intensity["evaluation"] as? [String: Any])?["dataset"] as? String == "synthetic")
            #expect(intensity["is_default"] as? Bool == true && intensity["kind"] as? String == "jigsaw")
            #expect(try get("/v1/models/sort-8", port: port).json["kind"] as? String == "sorting")
        }
    }

    @Test("seeds the server draws stay below 2^53, so a JavaScript client reads them exactly")
    func drawnSeedsFitADouble() throws {
        let png = try PNG.encode(scrambledImage(grid: 2, permutation: Array(0..<4), width: 20, height: 20))
        try withService(models: [try intensityModel(grid: 2)]) { port, _ in
            for _ in 0..<40 {
                let reply = try request("POST", "/v1/scramble?grid=2", port: port, headers: ["Content-Type": "image/png"], body: png)
                let seed = try #require(reply.json["seed"] as? NSNumber).uint64Value
                #expect(seed < 1 << 53, "seed \(seed) is not exact as a JavaScript number")
            }
        }
    }

    @Test("scramble returns the shuffled image with its permutation, as JSON or as PNG with headers")
    func scramble() throws {
        let original = scrambledImage(grid: 3, permutation: Array(0..<9), width: 30, height: 27)
        let png = try PNG.encode(original)
        try withService(models: [try intensityModel(grid: 3)]) { port, _ in
            let reply = try request("POST", "/v1/scramble?grid=3&seed=12", port: port, headers: ["Content-Type": "image/png"], body: png)
            #expect(reply.status == 200, "\(reply.text)")
            var generator = SeededGenerator(seed: 12)
            let expected = generator.permutation(9)
            #expect(reply.json["permutation"] as? [Int] == expected && reply.json["seed"] as? Int == 12)
            let image = try PNG.decode([UInt8](try #require(Data(base64Encoded: reply.json["image"] as? String ?? ""))))
            #expect(image == scrambledImage(grid: 3, permutation: expected, width: 30, height: 27))
            // Solving the scrambled image gives back the permutation.
            let solved = try request("POST", "/v1/solve", port: port, headers: ["Content-Type": "image/png"], body: try PNG.encode(image))
            #expect(solved.json["permutation"] as? [Int] == expected)
            let asPNG = try request("POST", "/v1/scramble?grid=3&seed=12", port: port,
                                    headers: ["Content-Type": "image/png", "Accept": "image/png"], body: png)
            #expect(asPNG.headers["content-type"] == "image/png" && asPNG.headers["x-seed"] == "12" && asPNG.headers["x-grid"] == "3")
            #expect(asPNG.headers["x-permutation"] == expected.map(String.init).joined(separator: ","))
            #expect(try PNG.decode(asPNG.body) == image)
            let unseeded = try request("POST", "/v1/scramble?grid=2", port: port, headers: ["Content-Type": "image/png"], body: png)
            #expect(unseeded.status == 200 && unseeded.json["seed"] is Int, "a drawn seed is reported")
        }
    }

    @Test("sort returns the ascending order, pads short lists and gives the soft matrix")
    func sort() throws {
        try withService(models: [try scalingSortModel(count: 8), try scalingSortModel(count: 5)]) { port, _ in
            let numbers = [0.7, 0.1, 0.9, 0.35, 0.5, 0.2, 0.8, 0.05]
            let reply = try postJSON("/v1/sort?tau=0.1", port: port, ["numbers": numbers])
            #expect(reply.status == 200, "\(reply.text)")
            #expect(reply.json["sorted"] as? [Double] == numbers.sorted())
            let ranks = numbers.map { value in numbers.sorted().firstIndex(of: value) ?? -1 }
            #expect(reply.json["permutation"] as? [Int] == ranks)
            #expect(reply.json["model"] as? String == "sort-8" && reply.json["padded"] as? Int == 0)
            #expect(((reply.json["soft"] as? [String: Any])?["matrix"] as? [[Double]])?.count == 8)
            let short = [3.0, 1.0, 2.0]
            let padded = try postJSON("/v1/sort", port: port, ["numbers": short])
            #expect(padded.json["model"] as? String == "sort-5", "the smallest model that holds the list")
            #expect(padded.json["sorted"] as? [Double] == [1, 2, 3] && padded.json["padded"] as? Int == 2)
            #expect(padded.json["permutation"] as? [Int] == [2, 0, 1])
            #expect(padded.json["soft"] == nil)
            let named = try postJSON("/v1/sort", port: port, ["numbers": short, "model": "sort-8"])
            #expect(named.json["padded"] as? Int == 5 && named.json["sorted"] as? [Double] == [1, 2, 3])
        }
    }

    @Test("the web page and static files come from the public directory; API misses stay JSON")
    func staticFiles() throws {
        let directory = NSTemporaryDirectory() + "public-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Data("<html>puzzles</html>".utf8).write(to: URL(fileURLWithPath: directory + "/index.html"))
        try Data("body{}".utf8).write(to: URL(fileURLWithPath: directory + "/style.css"))
        try withService(models: [try intensityModel(grid: 2)], publicDirectory: directory) { port, _ in
            let page = try get("/", port: port)
            #expect(page.status == 200 && page.text == "<html>puzzles</html>" && page.headers["content-type"]?.hasPrefix("text/html") == true)
            #expect(try get("/style.css", port: port).text == "body{}")
            let missing = try get("/v1/unknown", port: port)
            #expect(missing.status == 404 && missing.errorCode == "not_found")
            #expect(try get("/../etc/passwd", port: port).status == 404)
        }
        try withService(models: []) { port, _ in
            let index = try get("/", port: port)
            #expect(index.json["openapi"] as? String == "/openapi.json", "a JSON index without a web page")
        }
    }
}
