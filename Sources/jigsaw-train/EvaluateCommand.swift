import ArgumentParser
import Foundation
import Jigsaw
import TensorKit

struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Measure a jigsaw weights file on a data set split (Kendall tau, prop. wrong, prop. any wrong, l1, l2).")

    @Option(help: "The weights (.safetensors; the project's own or a PyTorch export of the tutorial network).")
    var weights: String
    @Option(name: .customLong("data-dir"), help: "Folder with the data set.") var dataDirectory: String?
    @Option(help: "Data set: mnist, fashion-mnist or folder.") var dataset: DatasetKind = .mnist
    @Option(help: "Split: test or train.") var split: DatasetSplit = .test
    @Option(help: "Evaluate at most this many images.") var limit: Int?
    @Option(help: "Seed of the scrambles.") var seed: UInt64 = 0
    @Option(help: "Worker threads.") var threads: Int = 2
    @Flag(help: "Print one JSON object instead of a table.") var json = false
    @Flag(name: .customLong("bound"), help: "Also report the best figures possible when identical pieces cannot be told apart.")
    var bound = false

    func validate() throws {
        guard FileManager.default.fileExists(atPath: weights) else { throw ValidationError("no weights file at \(weights)") }
        guard let directory = dataDirectory ?? dataset.defaultDirectory else {
            throw ValidationError("--data-dir is required for the \(dataset.rawValue) data set")
        }
        guard FileManager.default.fileExists(atPath: directory) else {
            throw ValidationError("data folder \(directory) does not exist")
        }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        if threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        BLAS.setThreads(1)
        let loaded = try JigsawModelFile.load(contentsOfFile: weights)
        loaded.network.threadCount = threads
        let c = loaded.network.configuration
        let data = try dataset.load(directory: dataDirectory ?? dataset.defaultDirectory ?? "", split: split,
                                    limit: limit, channels: c.channels, imageSize: c.imageSize)
        let result = try JigsawEvaluator.evaluate(network: loaded.network, dataset: data, seed: seed)
        let oracle = bound ? try JigsawEvaluator.indistinguishablePieceBound(
            dataset: data, grid: c.grid, limit: limit, seed: seed) : nil
        if json {
            if let oracle {
                print(String(result.json.dropLast()) + ", \"identical_piece_bound\": \(oracle.json)}")
            } else {
                print(result.json)
            }
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
