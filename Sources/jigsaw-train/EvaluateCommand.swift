import ArgumentParser
import Foundation
import Jigsaw
import Permutations
import TensorKit

struct EvaluateCommand: CheckedCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Measure a jigsaw weights file on a data set split (Kendall tau, prop. wrong, prop. any wrong, l1, l2).")

    /// The project's own weights or a PyTorch export of the tutorial network.
    @OptionGroup var weightsOptions: WeightsOptions
    @OptionGroup var data: DataOptions
    @Option(help: "Split: test or train.") var split: DatasetSplit = .test
    @Option(help: "Evaluate at most this many images.") var limit: Int?
    @OptionGroup var seedOptions: SeedOptions
    @OptionGroup var threadOptions: ThreadOptions
    @Flag(help: "Print one JSON object instead of a table.") var json = false
    @Option(name: .customLong("photo-aspect"),
            help: "Photos: width : height of the test crops before they are squeezed into the model's square (1: square; 1.333 for 4:3, 1.778 for 16:9).")
    var photoAspect: Double = 1
    @Option(name: .customLong("jpeg-quality"),
            help: "Re-encode every scrambled puzzle as a JPEG of this quality (1-100) before solving it, as a phone would save it.")
    var jpegQuality: Int?
    @Option(name: .customLong("shift-pixels"),
            help: "Translate every test image by this many pixels right and down (negative: left and up), black fill, before cutting it: a digit off the centre.")
    var shiftPixels: Int = 0
    @Flag(name: .customLong("bound"), help: "Also report the best figures possible when identical pieces cannot be told apart.")
    var bound = false
    @Flag(help: "Store the figures in the weights file's metadata (eval.*, or eval.shift_Npx.* with --shift-pixels N; whole split only).")
    var record = false

    var weights: String { weightsOptions.weights ?? "" }
    var dataset: DatasetKind { data.dataset }
    var seed: UInt64 { seedOptions.seed }
    var threads: Int { threadOptions.threads }

    func check() throws {
        _ = try weightsOptions.checkedPath()
        _ = try data.checkedDirectory()
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        if record && limit != nil { throw ValidationError("--record measures the whole split: drop --limit") }
        if !(photoAspect > 0.2 && photoAspect < 5) { throw ValidationError("--photo-aspect must be in (0.2, 5)") }
        if record && photoAspect != 1 { throw ValidationError("--record measures square crops: drop --photo-aspect") }
        if let jpegQuality, !(1...100).contains(jpegQuality) { throw ValidationError("--jpeg-quality must be in 1...100") }
        if record && jpegQuality != nil { throw ValidationError("--record measures the pieces as they are: drop --jpeg-quality") }
        if abs(shiftPixels) > 8 { throw ValidationError("--shift-pixels must be in -8...8") }
        try threadOptions.check()
    }

    func execute() throws {
        BLAS.setThreads(1)
        let loaded = try JigsawModelFile.load(contentsOfFile: weights)
        if !loaded.checksumVerified {
            FileHandle.standardError.write(Data("warning: \(weights) has no \(Safetensors.checksumKey); its tensors were only checked finite\n".utf8))
        }
        loaded.network.threadCount = threads
        let c = loaded.network.configuration
        let loadedData = try dataset.load(directory: self.data.directory ?? "", split: split,
                                    limit: limit, channels: c.channels, imageSize: c.imageSize, photoAspect: photoAspect,
                                    photoGrid: c.grid)
        let data = shiftPixels == 0 ? loadedData : loadedData.shifted(x: shiftPixels, y: shiftPixels)
        let result: JigsawEvaluation
        do {
            result = try JigsawEvaluator.evaluate(network: loaded.network, dataset: data, seed: seed, jpegQuality: jpegQuality)
        } catch let error as AssignmentError {
            throw EvaluationFailure(weights: weights, reason: "its network produced scores no matching can use (\(error))")
        } catch let error as SinkhornError {
            throw EvaluationFailure(weights: weights, reason: "its network produced scores Sinkhorn cannot normalise (\(error))")
        }
        let oracle = bound ? try JigsawEvaluator.indistinguishablePieceBound(
            dataset: data, grid: c.grid, limit: limit, seed: seed) : nil
        if record {
            var entries = result.metadata(dataset: dataset.rawValue, split: split.rawValue)
            entries["eval.seed"] = "\(seed)"
            if let oracle {
                entries["eval.bound_kendall_tau"] = String(format: "%.5f", oracle.kendallTau)
                entries["eval.bound_prop_wrong"] = String(format: "%.5f", oracle.propWrong)
                entries["eval.bound_prop_any_wrong"] = String(format: "%.5f", oracle.propAnyWrong)
            }
            if shiftPixels != 0 {
                entries = Dictionary(uniqueKeysWithValues: entries.map { key, value in
                    ("eval.shift_\(shiftPixels)px." + key.dropFirst("eval.".count), value)
                })
            }
            try JigsawModelFile.recordMetadata(entries, inFile: weights)
        }
        if json {
            print(jsonLine(EvaluationReport(evaluation: result, identicalPieceBound: oracle)))
        } else {
            print("model       \(weights) (\(c.grid)×\(c.grid)\(loaded.inferredConfiguration ? ", architecture inferred" : ""))")
            print("data        \(dataset.rawValue) \(split.rawValue), \(result.puzzles) puzzles")
            print(String(format: "kendall tau %.5f", result.kendallTau))
            print(String(format: "prop. wrong %.5f", result.propWrong))
            print(String(format: "any wrong   %.5f", result.propAnyWrong))
            print(String(format: "l1          %.5f", result.l1))
            print(String(format: "l2          %.5f", result.l2))
            if let oracle {
                print(String(format: "bound (identical pieces): kendall tau %.5f, prop. wrong %.5f, any wrong %.5f",
                             oracle.kendallTau, oracle.propWrong, oracle.propAnyWrong))
            }
        }
    }
}

/// A model whose scores fail on finite input: its weights are finite but useless.
struct EvaluationFailure: Error, CustomStringConvertible {
    var weights: String
    var reason: String
    var description: String { "cannot evaluate \(weights): \(reason)" }
}

/// What `evaluate --json` prints: the figures, and the oracle's under `identical_piece_bound` with `--bound`.
struct EvaluationReport: Encodable {
    var evaluation: JigsawEvaluation
    var identicalPieceBound: JigsawEvaluation?

    func encode(to encoder: Encoder) throws {
        try evaluation.encode(to: encoder)
        if let identicalPieceBound {
            var container = encoder.container(keyedBy: NamedCodingKey.self)
            try container.encode(identicalPieceBound, forKey: NamedCodingKey(stringValue: "identical_piece_bound"))
        }
    }
}
