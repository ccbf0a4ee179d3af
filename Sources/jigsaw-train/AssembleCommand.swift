import ArgumentParser
import Foundation
import Jigsaw
import NeuralNet
import Permutations
import TensorKit

/// `jigsaw-train assemble`: the network that arranges the pieces of any digit into a chosen one
/// (Mena et al. 2018, §4.3).
struct AssembleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "assemble",
        abstract: "Train and judge the network that assembles any digit's pieces into a chosen digit (Mena et al. 2018, §4.3).",
        subcommands: [AssembleTrainCommand.self, AssembleEvaluateCommand.self])
}

struct AssembleTrainCommand: CheckedCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a jigsaw network with one score head per class; every image is scored by its label's head.",
        discussion: """
        Takes every option of `jigsaw-train train`; --score-heads defaults to 10 here (one per MNIST \
        class). A typical run: --grid 10 (2 px pieces of the centred 20 × 20 region of a 28 px digit).
        """)

    @OptionGroup var options: TrainCommand

    var train: TrainCommand {
        var train = options
        if train.scoreHeads == 1 { train.scoreHeads = 10 }
        return train
    }

    func check() throws {
        try train.check()
        if train.data.dataset == .photos || train.data.dataset == .folder {
            throw ValidationError("assembly trains on labelled digits: use --dataset mnist or fashion-mnist")
        }
        if train.grid < 2 { throw ValidationError("--grid must be at least 2 to assemble anything") }
    }

    func execute() throws { try train.execute() }
}

struct AssembleEvaluateCommand: CheckedCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Assemble every test digit into every class and count how often a classifier recognises the target.",
        discussion: """
        The paper's judgement (§4.3): the share of (source digit, target class) pairs whose hard \
        assembly the classifier calls the target (paper: 85.1 %; chance: 10 %). Beside it, the same \
        share for a rank baseline that places the most inked pieces in the most inked cells of the \
        target class's mean training image. --held-out N measures on the last N training images \
        instead (the ones `train --validation-size N` held out), for choosing between models.
        """)

    @Option(help: "Assembly weights file (a jigsaw network with several score heads).") var weights: String
    @Option(help: "Classifier weights file (jigsaw-train classifier train).") var classifier: String
    @Option(name: .customLong("data-dir"), help: "MNIST directory (IDX files).") var dataDirectory: String
    @Option(name: .customLong("held-out"), help: "Measure on the last N training images instead of the test split.")
    var heldOut: Int?
    @Option(help: "Assemble at most this many source digits.") var limit: Int?
    @Flag(name: .customLong("no-baseline"), help: "Skip the rank baseline.") var noBaseline = false
    @Option(help: "Write Figure 1b (one source digit of every class × every target, hard assemblies) to this PNG.")
    var figure: String?
    @Option(name: .customLong("soft-figure"), help: "Write the same figure with soft assemblies S(X/τ) to this PNG.")
    var softFigure: String?
    @Option(name: .customLong("figure-temperature"), help: "τ of the soft figure.") var figureTemperature: Float = 1
    @Option(name: .customLong("figure-zoom"), help: "Pixels per image pixel in the figures.") var figureZoom = 3
    @Option(name: .customLong("figure-sources"),
            help: "Test-set indices of the figure's source digits, comma-separated (default: the first of every class).")
    var figureSources: String?
    @OptionGroup var seedOptions: SeedOptions
    @OptionGroup var threadOptions: ThreadOptions
    @Flag(help: "Store the figures in the weights file's metadata (assembly.*; whole test split only).") var record = false
    @Flag(help: "Print one JSON object instead of a table.") var json = false

    func check() throws {
        for (flag, path) in [("--weights", weights), ("--classifier", classifier)] where !FileManager.default.fileExists(atPath: path) {
            throw ValidationError("\(flag): no file at \(path)")
        }
        guard FileManager.default.fileExists(atPath: dataDirectory) else { throw ValidationError("--data-dir \(dataDirectory) does not exist") }
        if let heldOut, heldOut < 1 { throw ValidationError("--held-out must be at least 1") }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        if record && (limit != nil || heldOut != nil) { throw ValidationError("--record measures the whole test split: drop --limit and --held-out") }
        if !(figureTemperature.isFinite && figureTemperature > 0) { throw ValidationError("--figure-temperature must be positive") }
        if !(1...16).contains(figureZoom) { throw ValidationError("--figure-zoom must be in 1...16") }
        if let figureSources, figureIndices(figureSources) == nil {
            throw ValidationError("--figure-sources must be comma-separated non-negative indices")
        }
        try threadOptions.check()
    }

    func figureIndices(_ text: String) -> [Int]? {
        let values = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? -1) >= 0 }) else { return nil }
        return values.map { $0! }
    }

    func execute() throws {
        BLAS.setThreads(1)
        let loaded = try JigsawModelFile.load(contentsOfFile: weights)
        let network = loaded.network
        network.threadCount = threadOptions.threads
        let (judge, judgeMetadata) = try DigitClassifierFile.load(classifier)
        judge.threadCount = threadOptions.threads
        let c = network.configuration
        guard c.scoreHeads > 1 else {
            throw ValidationError("\(weights) has one score head: train it with `jigsaw-train assemble train`")
        }
        let train = heldOut != nil || !noBaseline ? try ImageDataset.mnist(directory: dataDirectory, split: .train) : nil
        let data: ImageDataset
        if let heldOut, let train {
            guard heldOut < train.count else { throw ValidationError("--held-out \(heldOut) leaves no training image") }
            data = ImageDataset.slice(train, (train.count - heldOut)..<train.count)
        } else {
            data = try ImageDataset.mnist(directory: dataDirectory, split: .test)
        }
        // The baseline's class means come from the images the network trained on.
        let heldBack = heldOut ?? Int(loaded.metadata["train.validation_size"] ?? "") ?? 0
        let templates = noBaseline ? nil : train.map { train in
            AssemblyTemplates(images: ImageDataset.slice(train, 0..<(train.count - min(heldBack, train.count - 1))),
                              grid: c.grid, classes: c.scoreHeads)
        }
        let progress = ProgressReporter(label: "assemble")
        let result = try AssemblyEvaluator.evaluate(
            network: network, classifier: judge, dataset: data, templates: templates, limit: limit, seed: seedOptions.seed,
            progress: { done, total in progress.update(done: done, total: total, fields: []) })
        progress.finish()
        let split = heldOut.map { "train[-\($0):]" } ?? "test"
        if record {
            var entries = result.metadata(dataset: "mnist", split: split)
            entries["assembly.seed"] = "\(seedOptions.seed)"
            entries["assembly.classifier_sha256"] = judgeMetadata[Safetensors.checksumKey] ?? ""
            try JigsawModelFile.recordMetadata(entries, inFile: weights)
        }
        if figure != nil || softFigure != nil {
            let test = heldOut == nil ? data : try ImageDataset.mnist(directory: dataDirectory, split: .test)
            let indices = try figureSources.map { figureIndices($0)! } ?? firstOfEveryClass(test, classes: c.scoreHeads)
            if let bad = indices.first(where: { $0 >= test.count }) {
                throw ValidationError("--figure-sources: index \(bad) is past the \(test.count) test images")
            }
            try writeFigures(network: network, test: test, indices: indices)
        }
        report(result, split: split, grid: c.grid)
    }

    func report(_ result: AssemblyEvaluation, split: String, grid: Int) {
        if json {
            print(jsonLine(result))
            return
        }
        print("model          \(weights) (\(grid)×\(grid), \(result.classes) heads)")
        print("data           mnist \(split), \(result.sources) source digits × \(result.classes) targets")
        print(String(format: "recognised     %.4f   (target ≠ source class %.4f, target = source class %.4f; chance %.2f)",
                     result.recognised, result.recognisedOtherClass, result.recognisedOwnClass, 1 / Double(result.classes)))
        if let template = result.templateRecognised, let other = result.templateRecognisedOtherClass {
            print(String(format: "rank baseline  %.4f   (target ≠ source class %.4f)", template, other))
        }
        print(String(format: "classifier on the sources themselves %.4f", result.classifierOnSources))
        print("by target      " + result.byTarget.map { String(format: "%.3f", $0) }.joined(separator: " "))
    }

    func firstOfEveryClass(_ data: ImageDataset, classes: Int) throws -> [Int] {
        guard let labels = data.labels else { throw ValidationError("the test split has no labels") }
        return try (0..<classes).map { k in
            guard let index = labels.firstIndex(of: k) else { throw ValidationError("the test split has no \(k)") }
            return index
        }
    }

    /// One row per source digit: the source, its scramble, then its assembly into every class.
    func writeFigures(network: JigsawNetwork, test: ImageDataset, indices: [Int]) throws {
        let c = network.configuration
        let classes = c.scoreHeads
        let wasTraining = network.isTraining
        network.isTraining = false
        defer { network.isTraining = wasTraining }
        var generator = SeededGenerator(seed: seedOptions.seed)
        var batch = PuzzleBatch(batchSize: indices.count, grid: c.grid, channels: 1, height: c.imageSize, width: c.imageSize)
        batch.fill(from: test, indices: indices, generator: &generator, normalization: nil)
        let sources = DigitAssembly.framed(batch.unscrambled, configuration: c)
        let scrambled = DigitAssembly.framed(batch.scrambled, arrangements: (0..<indices.count).map { _ in Array(0..<c.pieceCount) },
                                             configuration: c)
        var hard: [Tensor] = [], soft: [Tensor] = []
        for target in 0..<classes {
            let targets = [Int](repeating: target, count: indices.count)
            let arrangements = try DigitAssembly.arrange(network, pieces: batch.scrambled, targets: targets)
            hard.append(DigitAssembly.framed(batch.scrambled, arrangements: arrangements, configuration: c))
            if softFigure != nil {
                let matrices = try DigitAssembly.soften(network, pieces: batch.scrambled, targets: targets, temperature: figureTemperature)
                soft.append(DigitAssembly.framed(batch.scrambled, matrices: matrices, configuration: c))
            }
        }
        if let figure { try draw(rows: indices.count, sources: sources, scrambled: scrambled, assemblies: hard, to: figure) }
        if let softFigure { try draw(rows: indices.count, sources: sources, scrambled: scrambled, assemblies: soft, to: softFigure) }
    }

    func draw(rows: Int, sources: Tensor, scrambled: Tensor, assemblies: [Tensor], to path: String) throws {
        let side = sources.shape[2] * figureZoom, gap = 2, columnGap = 8
        let columns = 2 + assemblies.count
        let width = columns * side + (columns - 1) * gap + 2 * columnGap
        let height = rows * side + (rows - 1) * gap
        var picture = Image(width: width, height: height, channels: 1, repeating: 96)
        func x(_ column: Int) -> Int { column * (side + gap) + (column >= 1 ? columnGap : 0) + (column >= 2 ? columnGap : 0) }
        let plane = sources.shape[2] * sources.shape[3]
        for row in 0..<rows {
            let y = row * (side + gap)
            let panels = [sources, scrambled] + assemblies
            for (column, images) in panels.enumerated() {
                images.withUnsafeBufferPointer { values in
                    picture.paintPixels(UnsafeBufferPointer(rebasing: values[(row * plane)..<((row + 1) * plane)]),
                                        side: sources.shape[2], zoom: figureZoom, x: x(column), y: y)
                }
            }
        }
        try Data(try PNG.encode(picture)).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}

extension Image {
    /// Paints a `side × side` map of values in `[0, 1]` (clamped) at `(x, y)` of this one-channel
    /// image, each value as one `zoom × zoom` block.
    mutating func paintPixels(_ values: UnsafeBufferPointer<Float>, side: Int, zoom: Int, x: Int, y: Int) {
        for row in 0..<(side * zoom) {
            for column in 0..<(side * zoom) {
                let value = values[(row / zoom) * side + column / zoom]
                pixels[(y + row) * width + x + column] = UInt8((Swift.max(0, Swift.min(1, value)) * 255).rounded())
            }
        }
    }
}
