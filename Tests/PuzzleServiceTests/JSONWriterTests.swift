import Foundation
import HTTPCore
import PuzzleService
import TensorKit
import Testing

/// The hand-written JSON of the solve answer against `JSONEncoder` (the response encoder's
/// settings): byte for byte, on bodies with every optional field absent and present.
@Suite("JSON writer")
struct JSONWriterTests {
    static func floats(_ count: Int, _ generator: inout SeededGenerator) -> [Float] {
        // Ordinary values, whole numbers (written without ".0"), tiny and huge magnitudes (exponents).
        let specials: [Float] = [0, -0.0, 1, -3, 0.5, 1e-7, 3.4e38, 1.17549435e-38, 123_456_792, 0.1, 2.5e-5, 1e16]
        return (0..<count).map { index in
            index < specials.count && index % 2 == 0 ? specials[index] : Float.random(in: -2...2, using: &generator)
        }
    }

    static func body(full: Bool, seed: UInt64) -> PuzzleBody {
        var generator = SeededGenerator(seed: seed)
        let n = 9
        let rows = (0..<n).map { _ in floats(n, &generator) }
        var body = PuzzleBody(id: "ec2a0f07f7e9434c", model: "mnist-3x3 \"é\" \\ / \u{1}\t\n", grid: 3,
                              permutation: generator.permutation(n), confidence: floats(n, &generator),
                              origin: "upload image/png", created: "2026-12-03T15:11:56Z")
        guard full else { return body }
        body.reconstruction = "iVBORw0KGgo+/="
        body.reconstructionType = "image/png"
        body.scrambled = "AAAA/+=="
        body.scores = rows
        body.soft = SoftMatrixBody(Tensor(shape: [n, n], storage: rows.flatMap { $0 }), tau: 0.25, iterations: 20,
                                   marginalError: 1.5e-6)
        body.truth = generator.permutation(n)
        body.correctPieces = 7
        body.sample = SampleBody(dataset: "mnist", index: 42, label: nil, seed: UInt64.max)
        body.links = PuzzleLinks(id: "ec2a0f07f7e9434c")
        body.gridDetection = GridDetectionBody(grid: 3, confidence: 0.75,
                                               scores: ["2": 0.1, "3": 0.75, "9": 0, "10": 0.5, "16": 1, "4": -0.25])
        body.warnings = ["a \"colour\" photo\u{7f} — sent to a digit model", ""]
        return body
    }

    static func written(_ value: some JSONWritable) throws -> [UInt8] {
        var writer = JSONWriter()
        try value.write(to: &writer)
        return writer.bytes
    }

    @Test("the solve answer: same bytes as JSONEncoder", arguments: [false, true], [UInt64(1), 2, 3])
    func puzzleBody(full: Bool, seed: UInt64) throws {
        let body = Self.body(full: full, seed: seed)
        let expected = try ResponseEncoding.encoder().encode(body)
        let actual = try Self.written(body)
        #expect(String(decoding: actual, as: UTF8.self) == String(decoding: expected, as: UTF8.self))
        #expect(actual == [UInt8](expected))
    }

    @Test("each part alone: same bytes as JSONEncoder")
    func parts() throws {
        let full = Self.body(full: true, seed: 4)
        #expect(try Self.written(full.links!) == [UInt8](try ResponseEncoding.encoder().encode(full.links!)))
        #expect(try Self.written(full.soft!) == [UInt8](try ResponseEncoding.encoder().encode(full.soft!)))
        #expect(try Self.written(full.gridDetection!) == [UInt8](try ResponseEncoding.encoder().encode(full.gridDetection!)))
        let labelled = SampleBody(dataset: "fashion-mnist", index: 0, label: 9, seed: 0)
        #expect(try Self.written(labelled) == [UInt8](try ResponseEncoding.encoder().encode(labelled)))
    }

    @Test("a non-finite number is refused, as JSONEncoder refuses it", arguments: [Float.nan, .infinity, -.infinity])
    func nonFinite(value: Float) {
        var body = Self.body(full: false, seed: 5)
        body.confidence[3] = value
        #expect(throws: JSONWriter.Failure.self) { try Self.written(body) }
        #expect(throws: (any Error).self) { try ResponseEncoding.encoder().encode(body) }
    }

    @Test("Server-Timing durations print as %.3f does")
    func timingValues() {
        var generator = SeededGenerator(seed: 6)
        let values: [Double] = [0, 0.0004, 0.0006, 0.001, 0.01, 0.1, 1, 9.9996, 12.345, 999.9999, 123_456.789]
            + (0..<500).map { _ in Double.random(in: 0...50, using: &generator) }
        for value in values {
            #expect(ServerTimingValue.milliseconds(value) == String(format: "%.3f", value), "\(value)")
        }
        #expect(ServerTimingValue.milliseconds(-1) == "0.000")
        #expect(ServerTimingValue.milliseconds(.nan) == "0.000")
    }
}
