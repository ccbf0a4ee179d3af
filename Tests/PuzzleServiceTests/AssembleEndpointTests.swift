import Foundation
import HTTPCore
import Jigsaw
import NeuralNet
import PuzzleService
import TensorKit
import Testing

/// `POST /v1/assemble` and `GET /v1/assemble` with an assembly network known in closed form.
///
/// The network is ``intensityModel(grid:)``'s with one head per class: head `k` scores a piece of
/// mean intensity `u` in cell `j` as `u · t_k(j)`, a rank-one matrix, so the matching puts the
/// k-th most inked piece in the k-th largest cell of `t_k`, which ``AssemblyTemplates`` computes
/// independently. The classifier is a seeded random one; its verdicts are checked against the
/// classifier run on the returned PNGs.
@Suite struct AssembleEndpointTests {
    static let classes = 3

    /// The templates `t_k(j)` of the closed-form network: distinct, a different order per class.
    static func template(_ k: Int) -> [Double] {
        [[1, 2, 3, 4], [4, 3, 2, 1], [2, 4, 1, 3]][k].map(Double.init)
    }

    struct Files {
        var folder: URL
        var assembly: String
        var classifier: String
    }

    static func files() throws -> Files {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("assemble-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let configuration = JigsawNetworkConfiguration(grid: 2, imageSize: 28, hiddenChannels: 1, kernelSize: 1,
                                                       normalisationMean: [0], normalisationStd: [1], scoreHeads: classes)
        let network = try JigsawNetwork(configuration: configuration)
        let side = 7, n = 4
        var output = [Float]()
        for k in 0..<classes {
            for j in 0..<n { output += [Float](repeating: Float(template(k)[j]) / Float(side * side), count: side * side) }
        }
        try network.load([
            "g_1.0.weight": Tensor(shape: [1, 1, 1, 1], storage: [1]), "g_1.0.bias": Tensor(shape: [1], storage: [0]),
            "g_1.3.weight": Tensor(shape: [1], storage: [1]), "g_1.3.bias": Tensor(shape: [1], storage: [0]),
            "g_1.3.running_mean": Tensor(shape: [1], storage: [0]), "g_1.3.running_var": Tensor(shape: [1], storage: [1]),
            "g_2.weight": Tensor(shape: [classes * n, side * side], storage: output),
        ])
        let assembly = folder.appendingPathComponent("closed-form-assembly.safetensors").path
        try JigsawModelFile.save(network, metadata: ["assembly.recognised": "0.5"], to: assembly)
        var generator = SeededGenerator(seed: 2)
        let judge = DigitClassifier(.init(firstChannels: 2, secondChannels: 2, hidden: 4, classes: classes), generator: &generator)
        let classifier = folder.appendingPathComponent("classifier.safetensors").path
        try DigitClassifierFile.save(judge, metadata: ["eval.test_accuracy": "0.25"], to: classifier)
        return Files(folder: folder, assembly: assembly, classifier: classifier)
    }

    func decode(_ base64: Any?) throws -> Image {
        let text = try #require(base64 as? String)
        return try PNG.decode([UInt8](try #require(Data(base64Encoded: text))))
    }

    @Test func piecesAreArrangedByRankAndJudged() throws {
        let files = try Self.files()
        defer { try? FileManager.default.removeItem(at: files.folder) }
        let assembler = try DigitAssembler(assemblyFile: files.assembly, classifierFile: files.classifier)
        let (judge, _) = try DigitClassifierFile.load(files.classifier)
        let intensities: [UInt8] = [90, 200, 30, 140]
        try withService(models: [], assembler: assembler) { port, _ in
            let info = try get("/v1/assemble", port: port)
            #expect(info.status == 200)
            #expect(info.json["targets"] as? Int == Self.classes)
            #expect(info.json["grid"] as? Int == 2)
            #expect((info.json["evaluation"] as? [String: Any])?["assembly.recognised"] as? String == "0.5")
            #expect(info.json["classifier_test_accuracy"] as? String == "0.25")

            for target in 0..<Self.classes {
                let body: [String: Any] = ["pieces": intensities.map { constantPiece($0, side: 14) }, "target": target, "tau": 0.5]
                let reply = try postJSON("/v1/assemble", port: port, body)
                #expect(reply.status == 200, "\(reply.text)")
                let cells = reply.json["cells"] as? [Int] ?? []
                // The rank arrangement, computed independently.
                let pieces = intensities.flatMap { [Float](repeating: Float($0) / 255, count: 196) }
                let expected = pieces.withUnsafeBufferPointer {
                    AssemblyTemplates(grid: 2, templates: (0..<Self.classes).map(Self.template)).arrange(pieces: $0, target: target)
                }
                #expect(cells == expected, "target \(target)")
                #expect(reply.json["input"] as? String == "pieces")
                // The assembly holds piece i in cell cells[i].
                let assembled = try decode((reply.json["assembled"] as? [String: Any])?["png"])
                #expect(assembled.width == 28 && assembled.height == 28)
                for (piece, cell) in cells.enumerated() {
                    #expect(assembled[(cell % 2) * 14 + 3, (cell / 2) * 14 + 5, 0] == intensities[piece])
                }
                // The verdict is the classifier's on that picture.
                let verdict = try #require((reply.json["assembled"] as? [String: Any])?["verdict"] as? [String: Any])
                let probabilities = (verdict["probabilities"] as? [Double]) ?? []
                let direct = judge.probabilities(assembled.tensor(channels: 1).reshaped([1, 1, 28, 28])).storage
                #expect(probabilities.count == Self.classes)
                for (a, b) in zip(probabilities, direct) { #expect(abs(a - Double(b)) < 1e-4) }
                let digit = verdict["digit"] as? Int ?? -1
                #expect(digit == direct.indices.max { direct[$0] < direct[$1] })
                #expect(reply.json["recognised"] as? Bool == (digit == target))
                // τ asked for: a soft assembly too.
                let soft = try #require(reply.json["soft"] as? [String: Any])
                #expect(soft["tau"] as? Double == 0.5)
                #expect(try decode(soft["png"]).width == 28)

                // Accept: image/png returns the assembly itself.
                let data = try JSONSerialization.data(withJSONObject: body)
                let png = try request("POST", "/v1/assemble", port: port,
                                      headers: ["Content-Type": "application/json", "Accept": "image/png"], body: [UInt8](data))
                #expect(png.status == 200)
                #expect(png.headers["content-type"] == "image/png")
                #expect(png.headers["x-cells"] == cells.map(String.init).joined(separator: ","))
                #expect(try PNG.decode(png.body) == assembled)
            }
        }
    }

    @Test func aPictureOfADigitIsNormalisedFirst() throws {
        let files = try Self.files()
        defer { try? FileManager.default.removeItem(at: files.folder) }
        let assembler = try DigitAssembler(assemblyFile: files.assembly, classifierFile: files.classifier)
        // Dark ink on light paper, like a phone photo of a drawn digit.
        var photo = Image(width: 90, height: 120, channels: 3, repeating: 235)
        for y in 20..<100 { for x in 40..<52 { for c in 0..<3 { photo[x, y, c] = 20 } } }
        let expected = try photo.mnistDigit()
        try withService(models: [], assembler: assembler) { port, _ in
            let reply = try request("POST", "/v1/assemble?target=1", port: port, headers: ["Content-Type": "image/png"],
                                    body: try PNG.encode(photo))
            #expect(reply.status == 200, "\(reply.text)")
            #expect(reply.json["input"] as? String == "digit")
            #expect(try decode((reply.json["source"] as? [String: Any])?["png"]) == expected)
            let cells = reply.json["cells"] as? [Int] ?? []
            #expect(Set(cells) == Set(0..<4))
            // The assembly is the source's cells moved as `cells` says.
            let source = expected.cellsForTest(grid: 2)
            let assembled = try decode((reply.json["assembled"] as? [String: Any])?["png"]).cellsForTest(grid: 2)
            for (piece, cell) in cells.enumerated() { #expect(assembled[cell] == source[piece]) }
        }
    }

    struct Refusal: Sendable, CustomStringConvertible {
        var name: String
        var target: String
        var contentType: String
        var body: [UInt8]
        var status: Int
        var code: String
        var description: String { name }
    }

    static let refusals: [Refusal] = {
        let pieces = try! JSONSerialization.data(withJSONObject: ["pieces": [constantPiece(9, side: 14)], "target": 0])
        let noTarget = try! JSONSerialization.data(withJSONObject: ["pieces": (0..<4).map { _ in constantPiece(9, side: 14) }])
        let both = try! JSONSerialization.data(withJSONObject: ["target": 0])
        let farTarget = try! JSONSerialization.data(withJSONObject: ["pieces": (0..<4).map { _ in constantPiece(9, side: 14) }, "target": 3])
        let blank = try! PNG.encode(Image(width: 40, height: 40, channels: 1, repeating: 128))
        let digit = try! PNG.encode(Image(width: 40, height: 40, channels: 1, repeating: 0))
        return [
            Refusal(name: "too few pieces", target: "", contentType: "application/json", body: [UInt8](pieces), status: 422, code: "unprocessable_input"),
            Refusal(name: "no target", target: "", contentType: "application/json", body: [UInt8](noTarget), status: 400, code: "invalid_parameter"),
            Refusal(name: "neither image nor pieces", target: "", contentType: "application/json", body: [UInt8](both), status: 400, code: "invalid_json"),
            Refusal(name: "target out of range", target: "", contentType: "application/json", body: [UInt8](farTarget), status: 400, code: "invalid_parameter"),
            Refusal(name: "query target out of range", target: "?target=7", contentType: "image/png", body: digit, status: 400, code: "invalid_parameter"),
            Refusal(name: "a blank picture", target: "?target=1", contentType: "image/png", body: blank, status: 422, code: "unprocessable_input"),
            Refusal(name: "a truncated PNG", target: "?target=1", contentType: "image/png", body: Array(blank.prefix(40)), status: 400, code: "invalid_image"),
            Refusal(name: "malformed JSON", target: "", contentType: "application/json", body: Array("{\"target\":".utf8), status: 400, code: "invalid_json"),
            Refusal(name: "an empty body", target: "?target=1", contentType: "image/png", body: [], status: 400, code: "empty_body"),
        ]
    }()

    @Test(arguments: refusals)
    func badRequestsAreRefused(_ refusal: Refusal) throws {
        let files = try Self.files()
        defer { try? FileManager.default.removeItem(at: files.folder) }
        let assembler = try DigitAssembler(assemblyFile: files.assembly, classifierFile: files.classifier)
        try withService(models: [], assembler: assembler) { port, _ in
            let reply = try request("POST", "/v1/assemble" + refusal.target, port: port,
                                    headers: ["Content-Type": refusal.contentType], body: refusal.body)
            #expect(reply.status == refusal.status, "\(refusal.name): \(reply.text)")
            #expect(reply.errorCode == refusal.code, "\(refusal.name): \(reply.text)")
            // The service still answers.
            #expect(try get("/v1/assemble", port: port).status == 200)
        }
    }

    @Test func withoutAnAssemblerTheRouteSaysSo() throws {
        try withService(models: []) { port, _ in
            let reply = try postJSON("/v1/assemble", port: port, ["target": 1, "pieces": [] as [Any]])
            #expect(reply.status == 503)
            #expect(reply.errorCode == "no_model")
            #expect(try get("/v1/assemble", port: port).status == 503)
        }
    }

    @Test func wrongFilesAreRefusedAtLoad() throws {
        let files = try Self.files()
        defer { try? FileManager.default.removeItem(at: files.folder) }
        // A jigsaw model is no assembler, and an assembler is not served as a jigsaw model.
        #expect(throws: ModelLoadError.self) {
            try DigitAssembler(assemblyFile: Fixtures.trainedModel, classifierFile: files.classifier)
        }
        #expect(throws: ModelLoadError.self) { try ServiceModel(contentsOfFile: files.assembly) }
        // Swapped files, and a damaged classifier.
        #expect(throws: ModelLoadError.self) {
            try DigitAssembler(assemblyFile: files.classifier, classifierFile: files.assembly)
        }
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: files.classifier)))
        bytes[bytes.count - 10] ^= 0x20
        let damaged = files.folder.appendingPathComponent("damaged.safetensors").path
        try Data(bytes).write(to: URL(fileURLWithPath: damaged))
        #expect(throws: ModelLoadError.self) { try DigitAssembler(assemblyFile: files.assembly, classifierFile: damaged) }
        // A classifier of another number of classes than the heads.
        var generator = SeededGenerator(seed: 1)
        let ten = DigitClassifier(.init(firstChannels: 2, secondChannels: 2, hidden: 4), generator: &generator)
        let tenPath = files.folder.appendingPathComponent("ten.safetensors").path
        try DigitClassifierFile.save(ten, metadata: [:], to: tenPath)
        #expect(throws: ModelLoadError.self) { try DigitAssembler(assemblyFile: files.assembly, classifierFile: tenPath) }
    }
}
