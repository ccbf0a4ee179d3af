import ArgumentParser
import Foundation
import Jigsaw

// Options shared by the commands, so that one idea has one spelling everywhere.
//
// Checks that need more than the parsed value of one option run from `run()` through `check()`,
// not from `validate()`: ArgumentParser validates a command before it reports unknown flags, so a
// check in `validate()` would hide a misspelt flag behind a message about a missing one.

/// A command whose options are checked at the start of `run()`, after every flag has been recognised.
protocol CheckedCommand: ParsableCommand {
    /// Throws `ValidationError` for unusable options.
    func check() throws
    func execute() throws
}

extension CheckedCommand {
    /// Checks, reporting a refusal as ArgumentParser reports its own (message, usage, exit status 64).
    func run() throws {
        do {
            try check()
        } catch let error as ValidationError {
            let usage = JigsawTrain.usageString(for: Self.self)
            FileHandle.standardError.write(Data("Error: \(error.message)\nUsage: \(usage)\n".utf8))
            throw ExitCode.validationFailure
        }
        try execute()
    }
}

/// `--dataset` and `--data-dir`.
struct DataOptions: ParsableArguments {
    @Option(help: "Data set: mnist, fashion-mnist, folder or photos.") var dataset: DatasetKind = .mnist
    @Option(name: .customLong("data-dir"), help: "Folder with the data set (IDX files, or PNGs for folder).")
    var dataDirectory: String?

    /// `--data-dir`, else the data set's default folder.
    var directory: String? { dataDirectory ?? dataset.defaultDirectory }

    /// The folder, which must exist.
    func checkedDirectory() throws -> String {
        guard let directory else {
            throw ValidationError("--data-dir is required for the \(dataset.rawValue) data set")
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ValidationError("data folder \(directory) does not exist")
        }
        return directory
    }
}

/// `--seed`, defaulting to 0.
struct SeedOptions: ParsableArguments {
    @Option(help: "Seed of every random draw.") var seed: UInt64 = 0
}

/// `--threads`.
struct ThreadOptions: ParsableArguments {
    @Option(help: "Worker threads.") var threads: Int = 2

    func check() throws {
        if threads < 1 { throw ValidationError("--threads must be at least 1") }
    }
}

/// `--weights`: a weights file to read.
struct WeightsOptions: ParsableArguments {
    @Option(help: "The weights file (.safetensors).") var weights: String?

    /// The path, which must name a file.
    func checkedPath() throws -> String {
        guard let weights else { throw ValidationError("--weights is required") }
        guard FileManager.default.fileExists(atPath: weights) else { throw ValidationError("no weights file at \(weights)") }
        return weights
    }
}

/// One JSON object on one line, keys sorted.
func jsonLine<Value: Encodable>(_ value: Value) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    guard let data = try? encoder.encode(value) else { return "{}" }
    return String(decoding: data, as: UTF8.self)
}

/// `x` rounded to `digits` decimals, so JSON shows the figures a table would.
func rounded(_ x: Double, _ digits: Int) -> Double {
    let scale = pow(10, Double(digits))
    return (x * scale).rounded() / scale
}

/// The command line as recorded in a weights file: the data folder becomes `DATA_DIR` and any
/// other absolute path its file name, so the metadata names nothing of the machine it ran on.
func recordedCommandLine(_ arguments: [String] = Array(CommandLine.arguments.dropFirst())) -> String {
    var recorded = ["jigsaw-train"]
    var previous = ""
    for argument in arguments {
        if previous == "--data-dir" {
            recorded.append("DATA_DIR")
        } else if argument.hasPrefix("--data-dir=") {
            recorded.append("--data-dir=DATA_DIR")
        } else if argument.hasPrefix("/") {
            recorded.append((argument as NSString).lastPathComponent)
        } else {
            recorded.append(argument)
        }
        previous = argument
    }
    return recorded.joined(separator: " ")
}
