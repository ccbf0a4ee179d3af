import Sorting
import Foundation
import Jigsaw
import NeuralNet
import Permutations
import PuzzleService
import TensorKit
import Testing

@Suite("Model registry")
struct ModelRegistryTests {
    static func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "registry-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// The fixture is the tutorial's 2×2 MNIST network saved without metadata (see
    /// Tests/Fixtures/torch/generate.py), so the inferred configuration must be the tutorial's.
    @Test("a PyTorch export without metadata loads with the tutorial configuration inferred")
    func inferredConfiguration() throws {
        let model = try ServiceModel(contentsOfFile: Fixtures.torchModel)
        #expect(model.name == "tutorial-2x2-random")
        #expect(model.isInferred)
        #expect(model.jigsawConfiguration == JigsawNetworkConfiguration(
            grid: 2, imageSize: 28, channels: 1, hiddenChannels: 32, kernelSize: 5,
            normalisationMean: [0.1307], normalisationStd: [0.3081]))
        #expect(model.parameterCount == 32 * 25 + 32 + 32 + 32 + 4 * 1568)
    }

    /// The service's answer for a real digit is the matching of the network's own scores,
    /// computed here from the file through the library's cut and normalisation.
    @Test("the service's permutation is the matching of the network's scores on fixture digits")
    func matchesNetworkScores() throws {
        let file = try SafetensorsFile(contentsOfFile: Fixtures.torchModel)
        let network = try JigsawNetwork(configuration: JigsawNetworkConfiguration())
        try network.load(file.tensors(expected: network.namedTensors().mapValues(\.shape), ignoring: { $0.hasSuffix("num_batches_tracked") }))
        network.isTraining = false
        let digits = try ImageDataset.mnist(imagesFile: Fixtures.mnistImages, labelsFile: Fixtures.mnistLabels, limit: 12)
        let model = try ServiceModel(contentsOfFile: Fixtures.torchModel)
        try withService(models: [model]) { port, _ in
            for index in 0..<digits.count {
                var generator = SeededGenerator(seed: UInt64(100 + index))
                let cells = Puzzle.cut(digits.tensor(index..<(index + 1)), grid: 2)
                let scrambled = Puzzle.scramble(cells, generator: &generator)
                var input = scrambled.pieces
                JigsawNetworkConfiguration().normalise(&input)
                let expected = try LinearAssignment.matchings(scores: network.forward(input))[0]
                let image = Image(tensor: Puzzle.join(scrambled.pieces).reshaped([1, 28, 28]))
                let reply = try request("POST", "/v1/solve", port: port, headers: ["Content-Type": "image/png"],
                                        body: try PNG.encode(image))
                #expect(reply.json["permutation"] as? [Int] == expected, "digit \(index), seed \(100 + index)")
                // The same pieces as a list of number arrays.
                let pieces = (0..<4).map { piece in
                    (0..<14).map { y in (0..<14).map { x in Double(scrambled.pieces[0, piece, 0, y, x]) } }
                }
                let listed = try postJSON("/v1/solve", port: port, ["pieces": pieces])
                #expect(listed.json["permutation"] as? [Int] == expected, "digit \(index) as arrays")
            }
        }
    }

    @Test("a trained model on main solves real fixture digits", .enabled(if: FileManager.default.fileExists(atPath: Fixtures.trainedModel)))
    func trainedModelSolvesDigits() throws {
        let digits = try ImageDataset.mnist(imagesFile: Fixtures.mnistImages, labelsFile: Fixtures.mnistLabels, limit: 100)
        let model = try ServiceModel(contentsOfFile: Fixtures.trainedModel)
        let grid = try #require(model.jigsawConfiguration?.grid)
        try withService(models: [model]) { port, _ in
            var correct = 0, pieces = 0
            for index in 0..<digits.count {
                var generator = SeededGenerator(seed: UInt64(index))
                let image = digits.image(at: index)
                let truth = generator.permutation(grid * grid)
                let cells = image.cellsForTest(grid: grid)
                let scrambled = tile(truth.map { cells[$0] }, grid: grid)
                let reply = try request("POST", "/v1/solve", port: port, headers: ["Content-Type": "image/png"], body: try PNG.encode(scrambled))
                let permutation = reply.json["permutation"] as? [Int] ?? []
                correct += zip(permutation, truth).filter { $0 == $1 }.count
                pieces += truth.count
            }
            // The tutorial's 2×2 network places 99.6% of test pieces right (PAPERS.md §3).
            #expect(Double(correct) / Double(pieces) > 0.95, "\(correct) of \(pieces) pieces right")
        }
    }

    @Test("a corrupt weights file stops the load with a message naming it")
    func corruptFile() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let good = try Data(contentsOf: URL(fileURLWithPath: Fixtures.torchModel))
        try good.write(to: URL(fileURLWithPath: directory + "/good.safetensors"))
        try Data(good.prefix(good.count / 2)).write(to: URL(fileURLWithPath: directory + "/broken.safetensors"))
        do {
            _ = try ModelRegistry(directory: directory)
            Issue.record("a truncated file must not load")
        } catch {
            guard case .invalidFile(let path, _) = error else { Issue.record("unexpected \(error)"); return }
            #expect(path.hasSuffix("broken.safetensors"))
        }
        try FileManager.default.removeItem(atPath: directory + "/broken.safetensors")
        #expect(try ModelRegistry(directory: directory).models.map(\.name) == ["good"])
    }

    @Test("inconsistent tensors, unknown architectures and duplicate names are refused")
    func invalidModels() throws {
        #expect(throws: ModelLoadError.self) {
            try ServiceModel(name: "x", metadata: [:], tensors: ["weights": Tensor(shape: [2])])
        }
        #expect(throws: ModelLoadError.self) {
            try ServiceModel(name: "x", metadata: [:], tensors: ["g_1.0.weight": Tensor(shape: [32, 1, 5, 5]), "g_2.weight": Tensor(shape: [5, 1568])])
        }
        #expect(throws: ModelLoadError.self) {
            try ServiceModel(name: "x", metadata: ["architecture": "transformer"], tensors: [:])
        }
        #expect(throws: ModelLoadError.self) {
            try ServiceModel(name: "x", metadata: ["architecture": "jigsaw-cnn", "grid": "2", "image_size": "28"], tensors: [:])
        }
        #expect(throws: ModelLoadError.duplicateName("intensity-2x2", paths: ["memory", "memory"])) {
            try ModelRegistry(models: [try intensityModel(grid: 2), try intensityModel(grid: 2)])
        }
        #expect(throws: ModelLoadError.unknownDefaultModel("sort-4")) {
            try ModelRegistry(models: [try intensityModel(grid: 2), try scalingSortModel(count: 4)], defaultModel: "sort-4")
        }
        let registry = try ModelRegistry(models: [try intensityModel(grid: 3), try intensityModel(grid: 2)], defaultModel: "intensity-3x3")
        #expect(registry.defaultJigsawModel?.name == "intensity-3x3")
    }

    @Test("a set-context network without metadata is inferred from context.weight and gives the same scores",
          arguments: [0, 12])
    func inferredSetContext(contextUnits: Int) throws {
        let configuration = JigsawNetworkConfiguration(grid: 4, imageSize: 32, hiddenChannels: 8, hiddenUnits: 16,
                                                       setContext: true, contextUnits: contextUnits)
        let network = try JigsawNetwork(configuration: configuration, seed: 9)
        let model = try ServiceModel(name: "ctx", metadata: [:], tensors: network.namedTensors())
        #expect(model.isInferred)
        #expect(model.jigsawConfiguration == configuration)
        var wrong = network.namedTensors()
        wrong["context.weight"] = Tensor(shape: [16, 5])
        #expect(throws: (any Error).self) { try ServiceModel(name: "bad", metadata: [:], tensors: wrong) }
        var generator = SeededGenerator(seed: 10)
        let pieces = generator.normal(network.inputShape(batch: 1))
        network.isTraining = false
        let rebuilt = try JigsawNetwork(configuration: try #require(model.jigsawConfiguration))
        try rebuilt.load(network.namedTensors())
        rebuilt.isTraining = false
        #expect(rebuilt.forward(pieces) == network.forward(pieces))
    }

    @Test("an attention network is served from its metadata; without metadata it is refused with the reason")
    func attentionNeedsMetadata() throws {
        let configuration = JigsawNetworkConfiguration(grid: 3, imageSize: 12, hiddenChannels: 4, kernelSize: 3,
                                                       hiddenUnits: 8, setContext: true, attentionBlocks: 1,
                                                       attentionHeads: 2, attentionHeadUnits: 4)
        let network = try JigsawNetwork(configuration: configuration, seed: 11)
        let model = try ServiceModel(name: "attn", metadata: configuration.metadata, tensors: network.namedTensors())
        #expect(model.jigsawConfiguration == configuration)
        #expect(!model.isInferred)
        #expect {
            try ServiceModel(name: "bare", metadata: [:], tensors: network.namedTensors())
        } throws: { error in
            "\(error)".contains("attention_heads")
        }
    }

    @Test("a sorting network without metadata is inferred from fc1 and fc2")
    func inferredSorting() throws {
        let model = try ServiceModel(name: "s", metadata: [:], tensors: [
            "fc1.weight": Tensor(shape: [32, 1]), "fc1.bias": Tensor(shape: [32]),
            "fc2.weight": Tensor(shape: [80, 32]), "fc2.bias": Tensor(shape: [80]),
        ])
        #expect(model.sortingConfiguration == SortingNetworkConfiguration(count: 80, hiddenUnits: 32))
        #expect(model.isInferred)
    }
}

extension Image {
    /// The `grid × grid` cells after a centre-crop to a multiple of the grid (test-side copy).
    func cellsForTest(grid: Int) -> [Image] {
        let cellWidth = width / grid, cellHeight = height / grid
        let left = (width - grid * cellWidth) / 2, top = (height - grid * cellHeight) / 2
        return (0..<(grid * grid)).map { cell in
            var pixels: [UInt8] = []
            for y in 0..<cellHeight {
                for x in 0..<cellWidth {
                    pixels.append(self[left + (cell % grid) * cellWidth + x, top + (cell / grid) * cellHeight + y, 0])
                }
            }
            return Image(width: cellWidth, height: cellHeight, channels: 1, pixels: pixels)
        }
    }
}

/// Tiles gray cells row-major.
func tile(_ cells: [Image], grid: Int) -> Image {
    let (cellWidth, cellHeight) = (cells[0].width, cells[0].height)
    var image = Image(width: grid * cellWidth, height: grid * cellHeight, channels: 1)
    for (index, cell) in cells.enumerated() {
        for y in 0..<cellHeight {
            for x in 0..<cellWidth {
                image.pixels[(index / grid * cellHeight + y) * image.width + index % grid * cellWidth + x] = cell[x, y, 0]
            }
        }
    }
    return image
}
