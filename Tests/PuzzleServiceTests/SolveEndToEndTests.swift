import Dispatch
import Foundation
import HTTPCore
import Jigsaw
import NeuralNet
import Permutations
import PuzzleService
import TensorKit
import Testing
import TestSupport

@Suite("Solve end to end")
struct SolveEndToEndTests {
    /// Scrambles with `SeededGenerator(seed:)`; the answer is that permutation, by construction.
    static func answer(grid: Int, seed: UInt64) -> [Int] {
        var generator = SeededGenerator(seed: seed)
        return generator.permutation(grid * grid)
    }

    @Test("a scrambled PNG is solved to the known permutation and reconstructed", arguments: [2, 3], [UInt64(1), 2, 3, 4])
    func solvesScrambledPNG(grid: Int, seed: UInt64) throws {
        let truth = Self.answer(grid: grid, seed: seed)
        let side = grid == 2 ? 28 : 27
        let png = try PNG.encode(scrambledImage(grid: grid, permutation: truth, width: side, height: side))
        try withService(models: [try intensityModel(grid: grid)]) { port, _ in
            let reply = try request("POST", "/v1/solve?model=intensity-\(grid)x\(grid)", port: port,
                                    headers: ["Content-Type": "image/png"], body: png)
            #expect(reply.status == 200, "seed \(seed): \(reply.text)")
            #expect(reply.json["permutation"] as? [Int] == truth, "seed \(seed)")
            let confidence = reply.json["confidence"] as? [Double] ?? []
            #expect(confidence.count == grid * grid && confidence.allSatisfy { $0 > 0 && $0 <= 1 + 1e-6 }, "seed \(seed)")
            let reconstruction = try #require(Data(base64Encoded: reply.json["reconstruction"] as? String ?? ""))
            let solved = try PNG.decode([UInt8](reconstruction))
            let identity = scrambledImage(grid: grid, permutation: Array(0..<(grid * grid)), width: side, height: side)
            #expect(solved == identity, "seed \(seed): the reconstruction is the unscrambled image")
            let id = try #require(reply.json["id"] as? String)
            let stored = try get("/v1/puzzles/\(id)", port: port)
            #expect(stored.status == 200 && stored.json["permutation"] as? [Int] == truth)
            #expect((stored.json["scores"] as? [[Double]])?.count == grid * grid)
            let solution = try get("/v1/puzzles/\(id)/solution.png", port: port)
            #expect(solution.status == 200 && solution.headers["content-type"] == "image/png")
            #expect(try PNG.decode(solution.body) == identity)
            let scrambled = try get("/v1/puzzles/\(id)/scrambled.png", port: port)
            #expect(try PNG.decode(scrambled.body) == PNG.decode(png))
        }
    }

    /// Every colour type, bit depth and interlacing decodes to the same puzzle (the intensity of
    /// an RGB pixel with equal channels is its luma).
    @Test("PNG colour types, bit depths and interlacing give the same answer")
    func pngVariants() throws {
        let grid = 2, truth = Self.answer(grid: 2, seed: 7)
        let gray = scrambledImage(grid: grid, permutation: truth, width: 28, height: 28)
        let values = gray.pixels.map(Int.init)
        let palette = (0..<4).map { cellIntensity($0) }
        var variants: [(String, [UInt8])] = [
            ("gray 8", try PNG.encode(gray)),
            ("rgb 8", try PNG.encode(gray.converted(toChannels: 3))),
            ("rgba 8", try PNG.encode(gray.converted(toChannels: 4))),
            ("gray 16 interlaced", PNGBuilder(width: 28, height: 28, bitDepth: 16, colourType: .gray, interlaced: true,
                                             samples: values.map { $0 * 257 }).bytes()),
            ("gray+alpha 8", PNGBuilder(width: 28, height: 28, bitDepth: 8, colourType: .grayAlpha,
                                        samples: values.flatMap { [$0, 255] }).bytes()),
            ("rgb 16", PNGBuilder(width: 28, height: 28, bitDepth: 16, colourType: .rgb,
                                  samples: values.flatMap { [$0 * 257, $0 * 257, $0 * 257] }).bytes()),
        ]
        var indexed = PNGBuilder(width: 28, height: 28, bitDepth: 8, colourType: .palette,
                                 samples: gray.pixels.map { value in palette.firstIndex(of: value) ?? 0 })
        indexed.palette = palette.map { ($0, $0, $0) }
        variants.append(("palette", indexed.bytes()))
        try withService(models: [try intensityModel(grid: grid)]) { port, _ in
            for (name, png) in variants {
                let reply = try request("POST", "/v1/solve", port: port, headers: ["Content-Type": "image/png"], body: png)
                #expect(reply.status == 200, "\(name): \(reply.text)")
                #expect(reply.json["permutation"] as? [Int] == truth, "\(name)")
            }
        }
    }

    @Test("sizes that are not the model's are cropped to a multiple of the grid and each piece resized",
          arguments: [(29, 31), (20, 20), (280, 280), (57, 42)])
    func otherSizes(width: Int, height: Int) throws {
        let truth = Self.answer(grid: 3, seed: 11)
        let png = try PNG.encode(scrambledImage(grid: 3, permutation: truth, width: width, height: height))
        try withService(models: [try intensityModel(grid: 3)]) { port, _ in
            let reply = try request("POST", "/v1/solve", port: port, headers: ["Content-Type": "image/png"], body: png)
            #expect(reply.status == 200, "\(width)×\(height): \(reply.text)")
            #expect(reply.json["permutation"] as? [Int] == truth, "\(width)×\(height)")
        }
    }

    @Test("a piece list of arrays, channel-first arrays or base64 PNGs is solved; JSON image too")
    func pieceLists() throws {
        let truth = Self.answer(grid: 3, seed: 5)
        let arrays = truth.map { constantPiece(cellIntensity($0), side: 9) }
        let channelFirst = truth.map { [constantPiece(cellIntensity($0), side: 9)] }
        let pngs = try truth.map { cell in
            try PNG.encode(Image(width: 12, height: 12, channels: 1, repeating: cellIntensity(cell))).base64()
        }
        let whole = try PNG.encode(scrambledImage(grid: 3, permutation: truth, width: 27, height: 27)).base64()
        try withService(models: [try intensityModel(grid: 2), try intensityModel(grid: 3)]) { port, _ in
            for (name, body) in [("arrays", ["pieces": arrays, "model": "intensity-3x3"] as [String: Any]),
                                 ("channel-first", ["pieces": channelFirst, "model": "intensity-3x3"]),
                                 ("png pieces", ["pieces": pngs, "model": "intensity-3x3", "tau": 0.5]),
                                 ("image", ["image": "data:image/png;base64," + whole, "model": "intensity-3x3"])] {
                let reply = try postJSON("/v1/solve", port: port, body)
                #expect(reply.status == 200, "\(name): \(reply.text)")
                #expect(reply.json["permutation"] as? [Int] == truth, "\(name)")
                #expect(reply.json["origin"] as? String == (name == "image" ? "upload" : "pieces"))
            }
            // tau asks for the soft matrix, doubly stochastic up to the reported marginal error.
            let reply = try postJSON("/v1/solve?model=intensity-3x3&tau=0.5&iterations=50", port: port, ["pieces": arrays])
            let soft = try #require(reply.json["soft"] as? [String: Any])
            let matrix = try #require(soft["matrix"] as? [[Double]])
            #expect(matrix.count == 9 && matrix.allSatisfy { $0.count == 9 })
            for j in 0..<9 { #expect(abs(matrix.map { $0[j] }.reduce(0, +) - 1) < 1e-4, "column \(j)") }
            #expect(soft["tau"] as? Double == 0.5 && soft["iterations"] as? Int == 50)
        }
    }

    @Test("Accept: image/png answers the reconstruction itself with the permutation in a header")
    func pngAnswer() throws {
        let truth = Self.answer(grid: 2, seed: 3)
        let png = try PNG.encode(scrambledImage(grid: 2, permutation: truth, width: 28, height: 28))
        try withService(models: [try intensityModel(grid: 2)]) { port, _ in
            let reply = try request("POST", "/v1/solve", port: port, headers: ["Content-Type": "image/png", "Accept": "image/png"], body: png)
            #expect(reply.status == 200 && reply.headers["content-type"] == "image/png")
            #expect(reply.headers["x-permutation"] == truth.map(String.init).joined(separator: ","))
            #expect(try PNG.decode(reply.body) == scrambledImage(grid: 2, permutation: [0, 1, 2, 3], width: 28, height: 28))
            #expect(reply.headers["x-puzzle-id"]?.count == 16)
        }
    }

    /// Theorem 1 of Mena et al. 2018: S(X/τ) → M(X) as τ → 0, so a colder soft reconstruction is
    /// closer to the hard one.
    @Test("the soft reconstruction at a lower temperature is closer to the hard solution")
    func softReconstructions() throws {
        let truth = Self.answer(grid: 3, seed: 9)
        let png = try PNG.encode(scrambledImage(grid: 3, permutation: truth, width: 27, height: 27))
        try withService(models: [try intensityModel(grid: 3)]) { port, _ in
            let solved = try request("POST", "/v1/solve", port: port, headers: ["Content-Type": "image/png"], body: png)
            let id = try #require(solved.json["id"] as? String)
            let hard = try PNG.decode(try get("/v1/puzzles/\(id)/solution.png", port: port).body)
            let warm = try get("/v1/puzzles/\(id)/soft?tau=5&iterations=100", port: port)
            let cold = try get("/v1/puzzles/\(id)/soft?tau=0.05&iterations=200", port: port)
            #expect(warm.status == 200 && cold.status == 200 && warm.headers["content-type"] == "image/png")
            let warmDistance = meanAbsoluteDifference(try PNG.decode(warm.body), hard)
            let coldDistance = meanAbsoluteDifference(try PNG.decode(cold.body), hard)
            #expect(coldDistance < warmDistance, "cold \(coldDistance) vs warm \(warmDistance)")
            #expect(coldDistance < 2, "at τ = 0.05 the soft image is nearly the hard one: \(coldDistance)")
            let matrixReply = try get("/v1/puzzles/\(id)/soft?tau=0.5&format=json", port: port)
            let soft = try #require(matrixReply.json["soft"] as? [String: Any])
            let matrix = try #require(soft["matrix"] as? [[Double]])
            let rowError = try #require(soft["row_marginal_error"] as? Double)
            for j in 0..<9 { #expect(abs(matrix.map { $0[j] }.reduce(0, +) - 1) < 1e-4, "column \(j)") }
            #expect(abs(matrix.map { $0.reduce(0, +) - 1 }.map(abs).reduce(0, +) - rowError) < 1e-4)
            #expect(matrix.allSatisfy { $0.allSatisfy { $0 >= 0 } })
        }
    }

    @Test("sample puzzles are the shipped test digits scrambled with seed k and stored")
    func samples() throws {
        let fixture = try ImageDataset.mnist(imagesFile: Fixtures.mnistImages, labelsFile: Fixtures.mnistLabels, limit: 100)
        let sampleSet = try SampleSet(directory: Fixtures.samples)
        #expect(sampleSet.datasets["mnist"]?.count == 100)
        try withService(models: [try intensityModel(grid: 2)], samples: sampleSet) { port, _ in
            let listing = try get("/v1/samples", port: port)
            #expect((listing.json["datasets"] as? [[String: Any]])?.contains { $0["name"] as? String == "mnist" } == true)
            for k in [0, 42, 99] {
                let reply = try get("/v1/samples/\(k)?dataset=mnist", port: port)
                #expect(reply.status == 200, "\(reply.text)")
                let truth = Self.answer(grid: 2, seed: UInt64(k))
                #expect(reply.json["truth"] as? [Int] == truth)
                #expect((reply.json["sample"] as? [String: Any])?["label"] as? Int == fixture.labels?[k])
                // The scrambled image is the fixture digit with slot s holding cell truth[s].
                let scrambled = try PNG.decode([UInt8](try #require(Data(base64Encoded: reply.json["scrambled"] as? String ?? ""))))
                let digit = fixture.image(at: k)
                for slot in 0..<4 {
                    let (sx, sy) = (slot % 2 * 14, slot / 2 * 14), (cx, cy) = (truth[slot] % 2 * 14, truth[slot] / 2 * 14)
                    for y in 0..<14 {
                        for x in 0..<14 where scrambled[sx + x, sy + y, 0] != digit[cx + x, cy + y, 0] {
                            Issue.record("sample \(k): slot \(slot) pixel \(x),\(y) differs")
                        }
                    }
                }
                let id = try #require(reply.json["id"] as? String)
                #expect(try get("/v1/puzzles/\(id)", port: port).status == 200)
            }
            #expect(try get("/v1/samples/100?dataset=mnist", port: port).errorCode == "sample_not_found")
            #expect(try get("/v1/samples/-1", port: port).errorCode == "sample_not_found")
            #expect(try get("/v1/samples/1?dataset=cifar", port: port).errorCode == "sample_not_found")
        }
    }

    @Test("concurrent solves all get their own answer")
    func concurrentSolves() throws {
        let seeds = (0..<24).map(UInt64.init)
        let bodies = try seeds.map { seed in
            try PNG.encode(scrambledImage(grid: 3, permutation: Self.answer(grid: 3, seed: seed), width: 27, height: 27))
        }
        try withService(models: [try intensityModel(grid: 3)]) { port, _ in
            let answers = Locked([[Int]?](repeating: nil, count: seeds.count))
            DispatchQueue.concurrentPerform(iterations: seeds.count) { index in
                let reply = try? request("POST", "/v1/solve", port: port, headers: ["Content-Type": "image/png"], body: bodies[index])
                answers.update { $0[index] = reply?.json["permutation"] as? [Int] }
            }
            for (index, seed) in seeds.enumerated() {
                #expect(answers.value[index] == Self.answer(grid: 3, seed: seed), "seed \(seed)")
            }
        }
    }
}

/// A value shared between threads in tests.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value
    init(_ value: Value) { stored = value }
    var value: Value { lock.withLock { stored } }
    func update<T>(_ body: (inout Value) -> T) -> T { lock.withLock { body(&stored) } }
}

extension [UInt8] {
    func base64() -> String { Data(self).base64EncodedString() }
}
