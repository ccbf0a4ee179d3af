import Foundation
import Jigsaw
import NeuralNet
import Permutations
import TensorKit
import Testing

/// Assembly of digits (Mena et al. 2018, §4.3): framing, the rank baseline against brute force,
/// the evaluator against a second count, stroke variation and digit normalisation.
@Suite struct DigitAssemblyTests {
    @Test func framedPutsEveryCellWhereTheCutTookIt() {
        // 8 px, grid 3: 2 px cells in the centred 6 × 6 region starting at (1, 1).
        let configuration = JigsawNetworkConfiguration(grid: 3, imageSize: 8, scoreHeads: 2)
        let cells = Tensor(shape: [1, 9, 1, 2, 2], storage: (0..<36).map { Float($0 + 1) })
        let framed = DigitAssembly.framed(cells, configuration: configuration)
        #expect(framed.shape == [1, 1, 8, 8])
        for y in 0..<8 {
            for x in 0..<8 {
                let inside = (1..<7).contains(x) && (1..<7).contains(y)
                let expected: Float = inside ? Float(((y - 1) / 2 * 3 + (x - 1) / 2) * 4 + (y - 1) % 2 * 2 + (x - 1) % 2 + 1) : 0
                #expect(framed.storage[y * 8 + x] == expected, "(\(x), \(y))")
            }
        }
        // Cutting the framed image gives the cells back.
        let recut = Puzzle.cut(framed, grid: 3)
        #expect(recut.storage == cells.storage)
        // A hard arrangement moves piece i to cell cells[i].
        let arrangement = [[8, 7, 6, 5, 4, 3, 2, 1, 0]]
        let moved = Puzzle.cut(DigitAssembly.framed(cells, arrangements: arrangement, configuration: configuration), grid: 3)
        for piece in 0..<9 {
            let cell = arrangement[0][piece]
            #expect(Array(moved.storage[(cell * 4)..<(cell * 4 + 4)]) == Array(cells.storage[(piece * 4)..<(piece * 4 + 4)]))
        }
    }

    @Test func rankBaselineMaximisesInkTimesTemplate() {
        var generator = SeededGenerator(seed: 11)
        for _ in 0..<20 {
            let templates = (0..<2).map { _ in (0..<4).map { _ in Double(generator.nextUniform()) } }
            let baseline = AssemblyTemplates(grid: 2, templates: templates)
            let pieces = (0..<16).map { _ in generator.nextUniform() }
            let ink = (0..<4).map { i in (0..<4).reduce(0.0) { $0 + Double(pieces[i * 4 + $1]) } }
            for target in 0..<2 {
                let cells = pieces.withUnsafeBufferPointer { baseline.arrange(pieces: $0, target: target) }
                #expect(Set(cells) == Set(0..<4))
                func value(_ cells: [Int]) -> Double { (0..<4).reduce(0) { $0 + ink[$1] * templates[target][cells[$1]] } }
                var best = -Double.infinity
                func permute(_ prefix: [Int]) {
                    if prefix.count == 4 { best = max(best, value(prefix)); return }
                    for cell in 0..<4 where !prefix.contains(cell) { permute(prefix + [cell]) }
                }
                permute([])
                #expect(abs(value(cells) - best) < 1e-9)
            }
        }
    }

    @Test func templatesAreClassMeansPerCell() {
        // Two 4 × 4 images, classes 0 and 1, grid 2.
        let pixels: [UInt8] = (0..<16).map { UInt8($0 * 10) } + [UInt8](repeating: 255, count: 16)
        let images = ImageDataset(count: 2, channels: 1, height: 4, width: 4, pixels: pixels, labels: [0, 1])
        let templates = AssemblyTemplates(images: images, grid: 2, classes: 2)
        // Cell 0 of image 0 holds pixels 0, 1, 4, 5: (0 + 10 + 40 + 50) / 255.
        #expect(abs(templates.templates[0][0] - 100.0 / 255) < 1e-12)
        #expect(abs(templates.templates[0][3] - (100.0 + 110 + 140 + 150) / 255) < 1e-12)
        #expect(templates.templates[1] == [4, 4, 4, 4])
    }

    /// The evaluator's figures against a direct count over the same puzzles.
    @Test func evaluatorAgreesWithADirectCount() throws {
        let digits = try ImageDataset.mnist(directory: fixturesDirectory, split: .test).prefix(40)
        let configuration = JigsawNetworkConfiguration(grid: 4, imageSize: 28, hiddenChannels: 8, hiddenUnits: 16, scoreHeads: 10)
        let network = try JigsawNetwork(configuration: configuration, seed: 3)
        var generator = SeededGenerator(seed: 1)
        let classifier = DigitClassifier(.init(firstChannels: 4, secondChannels: 4, hidden: 8), generator: &generator)
        let templates = AssemblyTemplates(images: digits, grid: 4, classes: 10)
        let result = try AssemblyEvaluator.evaluate(network: network, classifier: classifier, dataset: digits,
                                                    templates: templates, seed: 9, batchSize: 16)
        // The same puzzles, one at a time.
        var draws = SeededGenerator(seed: 9)
        var batch = PuzzleBatch(batchSize: 16, grid: 4, channels: 1, height: 28, width: 28)
        var hits = 0, ownHits = 0, templateHits = 0, sourcesRight = 0
        network.isTraining = false
        for start in stride(from: 0, to: 40, by: 16) {
            let end = min(start + 16, 40)
            batch.fill(from: digits, indices: start..<end, generator: &draws, normalization: nil)
            for b in 0..<batch.count {
                let label = digits.labels![start + b]
                let pieces = Tensor(shape: [1, 16, 1, 7, 7], storage: Array(batch.scrambled.storage[(b * 16 * 49)..<((b + 1) * 16 * 49)]))
                let cells = Tensor(shape: [1, 16, 1, 7, 7], storage: Array(batch.unscrambled.storage[(b * 16 * 49)..<((b + 1) * 16 * 49)]))
                if classifier.predict(Puzzle.join(cells).reshaped([1, 1, 28, 28])) == [label] { sourcesRight += 1 }
                for target in 0..<10 {
                    var input = pieces
                    configuration.normalise(&input)
                    let scores = network.forward(input, heads: [target])
                    let arrangement = try LinearAssignment.matchings(scores: scores)
                    let image = Puzzle.assemble(pieces, permutations: arrangement).reshaped([1, 1, 28, 28])
                    if classifier.predict(image) == [target] {
                        hits += 1
                        if target == label { ownHits += 1 }
                    }
                    let ranked = pieces.storage.withUnsafeBufferPointer { templates.arrange(pieces: $0, target: target) }
                    if classifier.predict(Puzzle.assemble(pieces, permutations: [ranked]).reshaped([1, 1, 28, 28])) == [target] {
                        templateHits += 1
                    }
                }
            }
        }
        #expect(result.sources == 40 && result.classes == 10)
        #expect(abs(result.recognised - Double(hits) / 400) < 1e-12)
        #expect(abs(result.recognisedOwnClass - Double(ownHits) / 40) < 1e-12)
        #expect(abs(result.recognisedOtherClass - Double(hits - ownHits) / 360) < 1e-12)
        #expect(abs((result.templateRecognised ?? -1) - Double(templateHits) / 400) < 1e-12)
        #expect(abs(result.classifierOnSources - Double(sourcesRight) / 40) < 1e-12)
        #expect(abs(result.byTarget.reduce(0, +) / 10 - result.recognised) < 1e-12)

        // A one-head network assembles nothing.
        let single = try JigsawNetwork(configuration: JigsawNetworkConfiguration(grid: 4, imageSize: 28))
        #expect(throws: JigsawTrainingError.self) {
            try AssemblyEvaluator.evaluate(network: single, classifier: classifier, dataset: digits)
        }
    }

    @Test func trainerScoresEveryImageWithItsLabelsHead() throws {
        let digits = try ImageDataset.mnist(directory: fixturesDirectory, split: .test).prefix(64)
        var configuration = JigsawTrainingConfiguration(
            network: JigsawNetworkConfiguration(grid: 4, imageSize: 28, hiddenChannels: 8, scoreHeads: 10),
            learningRate: 1e-3, batchSize: 64, epochs: 1, threads: 1)
        configuration.strokeProbability = 0.5
        let trainer = try JigsawTrainer(configuration: configuration, training: digits)
        let weight = trainer.network.outputLayer.weight
        let before = weight.value.storage
        let first = try trainer.step()
        #expect(first.lossPerPuzzle.isFinite)
        // One step over all 64 digits: the head of every class among them moved, no other did.
        let present = Set(digits.labels!)
        let rows = 16 * weight.shape[1]
        for head in 0..<10 {
            let changed = (head * rows..<((head + 1) * rows)).contains { weight.value.storage[$0] != before[$0] }
            #expect(changed == present.contains(head), "head \(head)")
        }
        var unlabelled = digits
        unlabelled.labels = nil
        #expect(throws: JigsawTrainingError.self) { try JigsawTrainer(configuration: configuration, training: unlabelled) }
        var strange = digits
        strange.labels![0] = 12
        #expect(throws: JigsawTrainingError.self) { try JigsawTrainer(configuration: configuration, training: strange) }
        #expect(configuration.metadata["train.stroke_probability"] == "0.5")
    }

    @Test func strokeVariationAddsOrRemovesInk() {
        // One 5 × 5 image: a vertical bar of 3 × 1 in the middle.
        var pixels = [UInt8](repeating: 0, count: 25)
        for row in 1...3 { pixels[row * 5 + 2] = 200 }
        let images = ImageDataset(count: 64, channels: 1, height: 5, width: 5,
                                  pixels: (0..<64).flatMap { _ in pixels }, labels: [Int](repeating: 1, count: 64))
        var generator = SeededGenerator(seed: 4)
        let varied = images.strokeVaried(probability: 1, generator: &generator)
        var thicker = 0, thinner = 0
        let original = pixels.reduce(0) { $0 + Int($1) }
        for image in 0..<64 {
            let ink = varied.pixels[(image * 25)..<((image + 1) * 25)].reduce(0) { $0 + Int($1) }
            if ink > original { thicker += 1 } else if ink < original { thinner += 1 }
        }
        #expect(thicker + thinner == 64)
        #expect(thicker > 16 && thinner > 16)
        var again = SeededGenerator(seed: 4)
        #expect(images.strokeVaried(probability: 1, generator: &again) == varied)
        var none = SeededGenerator(seed: 4)
        #expect(images.strokeVaried(probability: 0, generator: &none) == images)
        // One pass reaches one pixel from the bar (columns 1...3), two passes two (columns 0...4).
        func reach(_ data: ImageDataset) -> Set<Int> {
            var columns = Set<Int>()
            for image in 0..<data.count {
                for index in 0..<25 where data.pixels[image * 25 + index] > 0 { columns.insert(index % 5) }
            }
            return columns
        }
        #expect(reach(varied) == [1, 2, 3])
        var twice = SeededGenerator(seed: 4)
        #expect(reach(images.strokeVaried(probability: 1, maximumPasses: 2, generator: &twice)) == [0, 1, 2, 3, 4])
    }

    @Test func aPhotoOfInkOnPaperBecomesAnMNISTDigit() throws {
        // Dark ink on light paper, off centre, in colour: an L of 30 × 50 px in a 120 × 90 picture.
        var photo = Image(width: 120, height: 90, channels: 3, repeating: 230)
        for y in 10..<60 {
            for x in 70..<100 where x < 76 || y >= 54 {
                for c in 0..<3 { photo[x, y, c] = 30 }
            }
        }
        let digit = try photo.mnistDigit()
        #expect(digit.width == 28 && digit.height == 28 && digit.channels == 1)
        var minX = 28, maxX = -1, minY = 28, maxY = -1
        var mass = 0.0, sumX = 0.0, sumY = 0.0
        for y in 0..<28 {
            for x in 0..<28 where digit[x, y, 0] > 0 {
                if digit[x, y, 0] >= 128 { minX = min(minX, x); maxX = max(maxX, x); minY = min(minY, y); maxY = max(maxY, y) }
                let value = Double(digit[x, y, 0])
                mass += value; sumX += value * (Double(x) + 0.5); sumY += value * (Double(y) + 0.5)
            }
        }
        // The longer side (the L's height) is 20 px; the ink is white on black, centred by mass.
        #expect((19...21).contains(maxY - minY + 1), "\(maxY - minY + 1)")
        #expect((10...14).contains(maxX - minX + 1))
        #expect(digit[0, 0, 0] == 0 && digit.pixels.max() == 255)
        #expect(abs(sumX / mass - 14) <= 1 && abs(sumY / mass - 14) <= 1)

        // The same picture at ten times the size (a phone photo) gives nearly the same digit.
        var large = Image(width: 1200, height: 900, channels: 3)
        for y in 0..<900 { for x in 0..<1200 { for c in 0..<3 { large[x, y, c] = photo[x / 10, y / 10, c] } } }
        let fromLarge = try large.mnistDigit()
        let change = zip(digit.pixels, fromLarge.pixels).reduce(0.0) { $0 + abs(Double($1.0) - Double($1.1)) } / (28 * 28 * 255)
        #expect(change < 0.03, "\(change)")

        // MNIST digits come out as MNIST digits: the shipped classifier reads them as well.
        let digits = try ImageDataset.mnist(directory: fixturesDirectory, split: .test)
        var normalised = digits
        for index in 0..<digits.count {
            let image = try digits.image(at: index).mnistDigit()
            normalised.pixels.replaceSubrange((index * 784)..<((index + 1) * 784), with: image.pixels)
        }
        let (classifier, _) = try DigitClassifierFile.load(
            TrainCommandTests().repository.appendingPathComponent("Models/classifiers/mnist-classifier.safetensors").path)
        let before = DigitClassifierFile.accuracy(of: classifier, images: digits)
        let after = DigitClassifierFile.accuracy(of: classifier, images: normalised)
        #expect(after >= before - 0.01, "\(before) → \(after)")

        // A blank picture holds no digit.
        #expect(throws: Image.DigitError.noInk) { try Image(width: 40, height: 40, channels: 1, repeating: 200).mnistDigit() }
        #expect(throws: Image.DigitError.noInk) { try Image(width: 0, height: 0, channels: 1).mnistDigit() }
    }
}

/// The shipped assembly network (`Models/assembly/mnist-assembly.safetensors`) judged by the
/// shipped classifier on the 300 fixture test digits × 10 targets, against its recorded figure.
@Suite struct ShippedAssemblyTests {
    static let repository = TrainCommandTests().repository
    static let model = repository.appendingPathComponent("Models/assembly/mnist-assembly.safetensors").path

    @Test(.enabled(if: FileManager.default.fileExists(atPath: model)))
    func shippedAssemblerRecognisesTheFixtureDigits() throws {
        let loaded = try JigsawModelFile.load(contentsOfFile: Self.model)
        #expect(loaded.checksumVerified)
        #expect(loaded.network.configuration.scoreHeads == 10 && loaded.network.configuration.grid == 10)
        let recorded = try #require(Double(loaded.metadata["assembly.recognised"] ?? ""))
        #expect(loaded.metadata["assembly.split"] == "test" && loaded.metadata["assembly.sources"] == "10000")
        let (classifier, _) = try DigitClassifierFile.load(
            Self.repository.appendingPathComponent("Models/classifiers/mnist-classifier.safetensors").path)
        let digits = try ImageDataset.mnist(directory: fixturesDirectory, split: .test)
        let result = try AssemblyEvaluator.evaluate(network: loaded.network, classifier: classifier, dataset: digits)
        #expect(abs(result.recognised - recorded) < 0.04, "\(result.recognised) on 300 digits against \(recorded) recorded")
        #expect(result.recognised > 0.851, "the paper's figure is 85.1 %")
    }
}
