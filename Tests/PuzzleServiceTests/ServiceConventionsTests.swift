import Foundation
import HTTPCore
import Jigsaw
import PuzzleService
import Testing

@Suite("Service HTTP conventions: gzip answers, /docs, CORS on the API, process metrics", .serialized)
struct ServiceConventionsTests {
    static let goodPNG: [UInt8] = (try? PNG.encode(scrambledImage(grid: 2, permutation: [2, 0, 3, 1], width: 28, height: 28))) ?? []

    static let permutation = [4, 0, 8, 2, 6, 1, 3, 7, 5]
    static let largerPNG: [UInt8] = (try? PNG.encode(scrambledImage(grid: 3, permutation: permutation, width: 27, height: 27))) ?? []

    @Test("a solve answer is gzip-compressed when accepted and decodes to the same answer")
    func gzipSolve() throws {
        try withService(models: [try intensityModel(grid: 3)]) { port, _ in
            // With tau the answer carries the soft matrix too: well above the 1 KiB threshold.
            let plain = try request("POST", "/v1/solve?tau=1", port: port, headers: ["Content-Type": "image/png"], body: Self.largerPNG)
            let packed = try request("POST", "/v1/solve?tau=1", port: port,
                                     headers: ["Content-Type": "image/png", "Accept-Encoding": "gzip"], body: Self.largerPNG)
            #expect(plain.body.count >= 1024)
            #expect(plain.status == 200 && packed.status == 200)
            #expect(plain.headers["content-encoding"] == nil && plain.headers["vary"] == "Accept-Encoding")
            #expect(packed.headers["content-encoding"] == "gzip" && packed.headers["vary"] == "Accept-Encoding")
            #expect(packed.body.count < plain.body.count)
            #expect(packed.headers["server-timing"]?.contains(", gzip;dur=") == true && plain.headers["server-timing"]?.contains("gzip") == false)
            let inflated = try Gzip.decompress(packed.body)
            let answer = try #require(try JSONSerialization.jsonObject(with: Data(inflated)) as? [String: Any])
            #expect(answer["permutation"] as? [Int] == plain.json["permutation"] as? [Int])
            #expect(answer["permutation"] as? [Int] == Self.permutation)
            let image = try request("POST", "/v1/solve", port: port,
                                    headers: ["Content-Type": "image/png", "Accept": "image/png", "Accept-Encoding": "gzip"], body: Self.largerPNG)
            #expect(image.headers["content-type"] == "image/png" && image.headers["content-encoding"] == nil, "PNG is never gzipped")
        }
    }

    @Test("/docs is a self-contained HTML page with a validator; /openapi.json revalidates to 304")
    func documentation() throws {
        try withService(models: []) { port, _ in
            let page = try get("/docs", port: port)
            #expect(page.status == 200 && page.headers["content-type"] == "text/html; charset=utf-8")
            #expect(page.headers["content-security-policy"]?.hasPrefix("default-src 'none'") == true)
            #expect(page.text.contains("fetch(\"openapi.json\""))
            #expect(!page.text.contains("http://") && !page.text.contains("https://"), "no external resource")
            let tag = try #require(page.headers["etag"])
            #expect(try get("/docs", port: port, headers: ["If-None-Match": tag]).status == 304)
            let document = try get("/openapi.json", port: port)
            let documentTag = try #require(document.headers["etag"])
            #expect(document.headers["cache-control"] == "no-cache")
            let revalidated = try get("/openapi.json", port: port, headers: ["If-None-Match": documentTag])
            #expect(revalidated.status == 304 && revalidated.body.isEmpty)
            let packed = try get("/openapi.json", port: port, headers: ["Accept-Encoding": "gzip"])
            #expect(packed.headers["content-encoding"] == "gzip")
            #expect(try Gzip.decompress(packed.body) == document.body)
        }
    }

    @Test("CORS on the API: a preflight of POST /v1/solve, then the answer exposes the API's headers")
    func corsSolve() throws {
        let policy = HTTPResponsePolicy(cors: try HTTPCORSPolicy(allowedOrigins: ["http://localhost:3000"]))
        try withService(models: [try intensityModel(grid: 2)], responsePolicy: policy) { port, _ in
            let preflight = try request("OPTIONS", "/v1/solve", port: port, headers: [
                "Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type",
            ])
            #expect(preflight.status == 204)
            #expect(preflight.headers["access-control-allow-origin"] == "http://localhost:3000")
            #expect(preflight.headers["access-control-allow-methods"]?.contains("POST") == true)
            let answer = try request("POST", "/v1/solve", port: port, headers: [
                "Origin": "http://localhost:3000", "Content-Type": "image/png", "Accept": "image/png",
            ], body: Self.goodPNG)
            #expect(answer.headers["access-control-allow-origin"] == "http://localhost:3000")
            let exposed = Set((answer.headers["access-control-expose-headers"] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
            #expect(["Server-Timing", "X-Puzzle-Id", "X-Permutation", "X-Model"].allSatisfy(exposed.contains), "\(exposed)")
            let other = try request("POST", "/v1/solve", port: port, headers: ["Origin": "http://localhost:3001", "Content-Type": "image/png"],
                                    body: Self.goodPNG)
            #expect(other.status == 200 && other.headers["access-control-allow-origin"] == nil)
        }
    }

    @Test("/metrics has the process_* series and a route-labelled latency histogram")
    func processMetrics() throws {
        try withService(models: [try intensityModel(grid: 2)]) { port, _ in
            _ = try request("POST", "/v1/solve", port: port, headers: ["Content-Type": "image/png"], body: Self.goodPNG)
            _ = try get("/v1/puzzles/0123456789abcdef/soft", port: port)
            let lines = try get("/metrics", port: port).text.split(separator: "\n").map(String.init)
            var values: [String: Double] = [:]
            for line in lines where line.hasPrefix("process_") {
                let parts = line.split(separator: " ")
                #expect(parts.count == 2, "\(line)")
                values[String(parts[0])] = Double(parts[1])
                #expect(lines.contains("# TYPE \(parts[0]) \(parts[0].hasSuffix("_total") ? "counter" : "gauge")"))
            }
            #expect(Set(values.keys) == ["process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory_bytes",
                                         "process_start_time_seconds", "process_open_fds", "process_max_fds"])
            let resident = values["process_resident_memory_bytes"] ?? 0, virtual = values["process_virtual_memory_bytes"] ?? 0
            #expect(resident > 1_048_576 && resident <= virtual)
            let start = values["process_start_time_seconds"] ?? 0
            #expect(start <= Date().timeIntervalSince1970 + 1 && start > Date().timeIntervalSince1970 - 86_400 * 30)
            #expect((values["process_cpu_seconds_total"] ?? -1) > 0)
            #expect((values["process_open_fds"] ?? 0) >= 3 && (values["process_open_fds"] ?? 0) <= (values["process_max_fds"] ?? 0))
            #expect(lines.contains { $0.hasPrefix(#"jigsaw_http_request_duration_seconds_count{route="/v1/puzzles/{id}/soft",method="GET",status_class="4xx"} 1"#) })
            #expect(!lines.contains { $0.contains("0123456789abcdef") }, "the raw path never becomes a label")
        }
    }

    static let stat = "4242 (jigsaw-server) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 9 0 1234500 987654321 2048 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"

    @Test("/proc/self/stat and /proc/stat are read by proc(5)'s field numbers")
    func procParsing() throws {
        let metrics = try ProcessMetrics(stat: Self.stat, systemStat: "cpu 1 2 3\nbtime 1700000000\nprocesses 5\n",
                                         clockTicksPerSecond: 100, pageSize: 4096, openFileDescriptors: 12, maximumFileDescriptors: 1024)
        #expect(metrics.cpuSeconds == 3.0)
        #expect(metrics.virtualMemoryBytes == 987_654_321)
        #expect(metrics.residentMemoryBytes == 2048 * 4096)
        #expect(metrics.startTimeSeconds == 1_700_000_000 + 12_345)
        // A command name with spaces and parentheses does not shift the fields.
        let odd = Self.stat.replacingOccurrences(of: "(jigsaw-server)", with: "(a) b (c))")
        #expect(try ProcessMetrics(stat: odd, systemStat: "btime 1700000000\n", clockTicksPerSecond: 100, pageSize: 4096,
                                   openFileDescriptors: 12, maximumFileDescriptors: 1024) == metrics)
        #expect(metrics.prometheusText.contains("\nprocess_resident_memory_bytes 8388608\n"))
        #expect(ProcessMetrics.current() != nil)
    }

    @Test("malformed /proc text is refused with the reason", arguments: [
        ("", "btime 1", ProcessMetricsError.malformedStat("no (comm) field")),
        ("4242 (x) S 1 2 3", "btime 1", .malformedStat("4 fields after comm, expected at least 22")),
        (stat.replacingOccurrences(of: " 250 50 ", with: " 250 -50 "), "btime 1", .malformedStat("field 15 is not a number")),
        (stat.replacingOccurrences(of: " 2048 ", with: " 2k "), "btime 1", .malformedStat("field 24 is not a number")),
        (stat, "cpu 1 2 3\n", .missingBootTime),
        (stat, "btime soon\n", .missingBootTime),
    ] as [(String, String, ProcessMetricsError)])
    func procMalformed(stat: String, systemStat: String, expected: ProcessMetricsError) {
        #expect(throws: expected) {
            try ProcessMetrics(stat: stat, systemStat: systemStat, clockTicksPerSecond: 100, pageSize: 4096,
                               openFileDescriptors: nil, maximumFileDescriptors: nil)
        }
    }
}
