import Foundation
import HTTPCore
import Jigsaw
import NeuralNet
import PuzzleService
import TensorKit
import Testing

@Suite("Choosing the model for a request")
struct ModelChoiceTests {
    /// An untrained colour network served as a photo model of `grid`.
    static func colourModel(grid: Int) throws -> ServiceModel {
        let configuration = JigsawNetworkConfiguration(grid: grid, imageSize: 8 * grid, channels: 3, hiddenChannels: 2,
                                                       kernelSize: 3, hiddenUnits: 4, edgeBlocks: 1,
                                                       normalisationMean: [0.485, 0.456, 0.406],
                                                       normalisationStd: [0.229, 0.224, 0.225])
        let network = try JigsawNetwork(configuration: configuration, seed: UInt64(grid))
        var metadata = configuration.metadata
        metadata["train.dataset"] = "photos"
        return try ServiceModel(name: "photo-\(grid)x\(grid)", metadata: metadata, tensors: network.namedTensors())
    }

    /// A colour image of `grid × grid` cells, each its own noisy hue, so the cuts leave seams.
    static func colourMosaic(grid: Int, side: Int) -> Image {
        var generator = SeededGenerator(seed: UInt64(100 + grid))
        var image = Image(width: side, height: side, channels: 3)
        let cell = side / grid
        let hues = (0..<(grid * grid)).map { _ in (0..<3).map { _ in 40 + Int(generator.nextInt(below: 170)) } }
        for y in 0..<side {
            for x in 0..<side {
                let k = min(y / cell, grid - 1) * grid + min(x / cell, grid - 1)
                for c in 0..<3 {
                    let noise = Int(generator.nextInt(below: 21)) - 10
                    image.pixels[(y * side + x) * 3 + c] = UInt8(clamping: hues[k][c] + noise)
                }
            }
        }
        return image
    }

    static func png(_ image: Image) throws -> [UInt8] { try PNG.encode(image) }

    @Test("a colour photo with no model named goes to the photo model of the grid found in it", arguments: [2, 3])
    func colourPhotoFindsItsGrid(grid: Int) throws {
        let models = [try intensityModel(grid: 2), try Self.colourModel(grid: 2), try Self.colourModel(grid: 3)]
        try withService(models: models) { port, _ in
            let body = try Self.png(Self.colourMosaic(grid: grid, side: 96))
            let reply = try request("POST", "/v1/solve", port: port, headers: ["Content-Type": "image/png"], body: body)
            #expect(reply.status == 200, "\(reply.text)")
            #expect(reply.json["model"] as? String == "photo-\(grid)x\(grid)")
            let detection = reply.json["grid_detection"] as? [String: Any]
            #expect(detection?["grid"] as? Int == grid)
            #expect(reply.json["warnings"] == nil, "\(reply.json["warnings"] ?? "")")
        }
    }

    @Test("a gray puzzle keeps the default model; a grid in the query picks that grid's model")
    func grayAndExplicitGrid() throws {
        let models = [try intensityModel(grid: 2), try Self.colourModel(grid: 3)]
        try withService(models: models) { port, _ in
            let gray = try Self.png(scrambledImage(grid: 2, permutation: [2, 0, 3, 1], width: 28, height: 28))
            var reply = try request("POST", "/v1/solve", port: port, headers: ["Content-Type": "image/png"], body: gray)
            #expect(reply.status == 200 && reply.json["model"] as? String == "intensity-2x2", "\(reply.text)")
            #expect(reply.json["grid_detection"] == nil)
            let colour = try Self.png(Self.colourMosaic(grid: 3, side: 96))
            reply = try request("POST", "/v1/solve?grid=2", port: port, headers: ["Content-Type": "image/png"], body: colour)
            #expect(reply.status == 200 && reply.json["model"] as? String == "intensity-2x2", "\(reply.text)")
            let warnings = reply.json["warnings"] as? [String] ?? []
            #expect(warnings.count == 1 && warnings[0].contains("colour photo"), "\(warnings)")
            reply = try request("POST", "/v1/solve?grid=5", port: port, headers: ["Content-Type": "image/png"], body: colour)
            #expect(reply.status == 422 && reply.text.contains("served grids: 2×2, 3×3"), "\(reply.text)")
            reply = try request("POST", "/v1/solve?grid=3&model=intensity-2x2", port: port, headers: ["Content-Type": "image/png"], body: colour)
            #expect(reply.status == 422, "\(reply.text)")
            reply = try request("POST", "/v1/solve?grid=x", port: port, headers: ["Content-Type": "image/png"], body: colour)
            #expect(reply.status == 400, "\(reply.text)")
        }
    }

    @Test("a colour image to a gray model, named, is solved with a warning; PNG answers carry it as a header")
    func warnsAboutGrayModel() throws {
        let models = [try intensityModel(grid: 3), try Self.colourModel(grid: 3)]
        try withService(models: models) { port, _ in
            let colour = try Self.png(Self.colourMosaic(grid: 3, side: 96))
            var reply = try request("POST", "/v1/solve?model=intensity-3x3", port: port, headers: ["Content-Type": "image/png"], body: colour)
            #expect(reply.status == 200)
            let warnings = reply.json["warnings"] as? [String] ?? []
            #expect(warnings.first?.contains("'photo-3x3' is trained on photos") == true, "\(warnings)")
            reply = try request("POST", "/v1/solve?model=intensity-3x3", port: port,
                                headers: ["Content-Type": "image/png", "Accept": "image/png"], body: colour)
            #expect(reply.status == 200 && reply.headers["warning"]?.hasPrefix("299 - \"model 'intensity-3x3'") == true,
                    "\(reply.headers)")
        }
    }

    @Test("a colour piece list with no model named goes to the photo model of its piece count")
    func pieceListByCount() throws {
        let models = [try intensityModel(grid: 2), try Self.colourModel(grid: 3)]
        try withService(models: models) { port, _ in
            let cells = Self.colourMosaic(grid: 3, side: 48).cells(grid: 3)
            let pieces = try cells.map { Data(try PNG.encode($0)).base64EncodedString() }
            let reply = try postJSON("/v1/solve", port: port, ["pieces": pieces])
            #expect(reply.status == 200 && reply.json["model"] as? String == "photo-3x3", "\(reply.text)")
        }
    }

    @Test("a solve answers a Server-Timing header with every phase, in order, each a non-negative duration")
    func serverTiming() throws {
        try withService(models: [try intensityModel(grid: 2), try Self.colourModel(grid: 2)]) { port, _ in
            let colour = try Self.png(Self.colourMosaic(grid: 2, side: 64))
            for accept in ["application/json", "image/png"] {
                let reply = try request("POST", "/v1/solve", port: port, headers: ["Content-Type": "image/png", "Accept": accept], body: colour)
                #expect(reply.status == 200)
                let header = reply.headers["server-timing"] ?? ""
                let phases = header.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                let names = phases.map { String($0.split(separator: ";")[0]) }
                #expect(names == ["decode", "detect", "cut", "resize", "network", "match", "confidence", "encode"], "\(header)")
                let durations = phases.compactMap { $0.split(separator: "=").last.flatMap { Double($0) } }
                #expect(durations.count == names.count && durations.allSatisfy { $0 >= 0 }, "\(header)")
            }
        }
    }

    @Test("colourfulness: gray stored as RGB is not colour")
    func colourfulness() {
        var gray = Image(width: 10, height: 10, channels: 3)
        for i in 0..<100 { for c in 0..<3 { gray.pixels[i * 3 + c] = UInt8(i * 2) } }
        #expect(!gray.isColourful)
        #expect(Self.colourMosaic(grid: 2, side: 20).isColourful)
    }
}
