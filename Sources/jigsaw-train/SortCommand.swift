import Jigsaw
import Sorting
import ArgumentParser
import Foundation
import NeuralNet
import Permutations
import TensorKit

/// `jigsaw-train sort`: the number-sorting network of Mena et al. 2018, §4.1.
struct SortCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sort",
        abstract: "Train and evaluate the sorting network; measure the Sinkhorn backwards (Eisenberger et al. 2022).",
        subcommands: [SortTrainCommand.self, SortEvaluateCommand.self, SortReorderCommand.self, SortScalingCommand.self,
                      SortScalingPointCommand.self, SortGradientAccuracyCommand.self]
    )
}

extension SinkhornBackward: ExpressibleByArgument {}
extension SortingInputNormalisation: ExpressibleByArgument {}

/// Parses `"10,50,100"`.
func integerList(_ text: String) -> [Int]? {
    let parts = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard !parts.isEmpty, parts.allSatisfy({ $0 != nil }) else { return nil }
    return parts.compactMap { $0 }
}

/// This invocation as `jigsaw-train ARGUMENTS`, without the path the program was started from.
private var commandLine: String { recordedCommandLine() }

private func standardError(_ text: String) {
    FileHandle.standardError.write(Data(text.utf8))
}

/// Peak resident set size of this process so far, in bytes (Linux `VmHWM`), or nil elsewhere.
private func peakResidentBytes() -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        return line.split(separator: " ").compactMap { Int($0) }.first.map { $0 * 1024 }
    }
    return nil
}

/// One test distribution's figures in the JSON outputs and the `eval.table1` metadata.
private struct SortingEvaluationJSON: Encodable {
    var distribution: String
    var lists: Int
    var propWrong: Double
    var propAnyWrong: Double
    var kendallTau: Double
    var listsWithTies: Int

    enum CodingKeys: String, CodingKey {
        case distribution, lists, propWrong = "prop_wrong", propAnyWrong = "prop_any_wrong", kendallTau = "kendall_tau"
        case listsWithTies = "lists_with_ties"
    }
}

private func evaluationObject(_ result: SortingEvaluationResult) -> SortingEvaluationJSON {
    SortingEvaluationJSON(distribution: result.distribution.description, lists: result.lists,
                          propWrong: result.proportionWrong, propAnyWrong: result.proportionAnyWrong,
                          kendallTau: result.kendallTau, listsWithTies: result.listsWithTies)
}

/// The `--report` of `sort train`.
private struct SortTrainingReport: Encodable {
    struct Point: Encodable {
        var step: Int
        var loss: Double
        var seconds: Double
    }
    var count: Int
    var iterations: Int
    var backward: String
    var normalisation: String
    var steps: Int
    var seconds: Double
    var samples: Int
    var batchSize: Int
    var learningRate: Double
    var finalLearningRate: Double
    var curve: [Point]
    var evaluation: [SortingEvaluationJSON]
    var command: String

    enum CodingKeys: String, CodingKey {
        case count, iterations, backward, normalisation, steps, seconds, samples, batchSize = "batch_size"
        case learningRate = "learning_rate", finalLearningRate = "final_learning_rate", curve, evaluation, command
    }
}

/// What `sort evaluate --json` prints.
private struct SortEvaluationReport: Encodable {
    var weights: String
    var count: Int
    var normalisation: String
    var lists: Int
    var seed: UInt64
    var distributions: [SortingEvaluationJSON]
}

/// One line of `sort scaling` (and of its `scaling-point` child); absent figures are left out.
private struct ScalingLine: Encodable {
    var op = "sorting_train_step"
    var backward: String
    var n: Int
    var L: Int
    var B: Int?
    var S: Int?
    var status: String
    var predictedBytes: Int?
    var budgetBytes: Int?
    var ms: Double?
    var firstStepMs: Double?
    var peakBytes: Int?
    var vmHwmBytes: Int?
    var baselineBytes: Int?
    var stateBytes: Int?
    var steps: Int?

    enum CodingKeys: String, CodingKey {
        case op, backward, n, L, B, S, status, predictedBytes = "predicted_bytes", budgetBytes = "budget_bytes", ms
        case firstStepMs = "first_step_ms", peakBytes = "peak_bytes", vmHwmBytes = "vm_hwm_bytes"
        case baselineBytes = "baseline_bytes", stateBytes = "state_bytes", steps
    }
}

private func evaluationTable(_ results: [SortingEvaluationResult]) -> String {
    var lines = ["distribution     lists   prop_wrong  prop_any_wrong  kendall_tau  lists_with_ties"]
    for result in results {
        let name = result.distribution.description
        let padded = name + String(repeating: " ", count: max(0, 15 - name.count))
        lines.append(padded + String(format: " %6d   %10.4f  %14.4f  %11.5f  %15d",
                            result.lists, result.proportionWrong, result.proportionAnyWrong, result.kendallTau,
                            result.listsWithTies))
    }
    return lines.joined(separator: "\n")
}

private func evaluateTable1(_ network: SortingNetwork, lists: Int, seed: UInt64) throws -> [SortingEvaluationResult] {
    try SortingTestDistribution.table1.enumerated().map { index, distribution in
        try SortingEvaluation.evaluate(network, on: distribution, lists: lists, seed: seed &+ UInt64(index))
    }
}

struct SortTrainCommand: CheckedCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a sorting network on fresh U(0,1) lists and write it with its Table 1 evaluation.")

    @Option(help: "List length N.") var count = 50
    @Option(help: "Hidden units of the MLP.") var hiddenUnits = 32
    @Option(help: "Per-list input preprocessing: none (the paper's) or list-min-max.") var normalisation = SortingInputNormalisation.none
    @Flag(help: "Start the first layer's biases at zero (every ReLU kink at x = 0) instead of PyTorch's uniform draw.")
    var zeroFirstBias = false
    @Flag(help: "A first layer without biases: every ReLU kink at x = 0 for good, so positive inputs get scores linear in x.")
    var noFirstBias = false
    @Option(help: "Training steps (each a fresh batch).") var steps = 5000
    @Option(help: "Stop early after this many seconds (0: no limit).") var maxSeconds = 0.0
    @Option(name: [.customLong("learning-rate"), .customLong("lr")], help: "Adam learning rate.")
    var learningRate: Float = 0.1
    @Option(name: [.customLong("final-learning-rate"), .customLong("final-lr")],
            help: "Learning rate at the last step (geometric decay; default: constant).")
    var finalLearningRate: Float?
    @Option(name: [.customLong("temperature"), .customLong("tau")], help: "Sinkhorn temperature τ.")
    var temperature: Float = 1
    @Option(help: "Sinkhorn iterations.") var iterations = 10
    @Option(name: [.customLong("noise"), .customLong("noise-factor")], help: "Gumbel noise factor in training.")
    var noiseFactor: Float = 1
    @Option(help: "Gumbel samples per list.") var samples = 5
    @Option(help: "Lists per step.") var batchSize = 10
    @Option(help: "Sinkhorn backward: implicit, unrolled (recomputing) or tape (autodiff-style).") var backward = SinkhornBackward.implicit
    /// Seed of the initialisation, lists and noise.
    @OptionGroup var seedOptions: SeedOptions
    @Option(help: "After training, reorder the output slots by their mean rank on this many U(0,1) lists (0: off).")
    var reorderLists = 0
    @Option(help: "Seed of the slot-reordering lists.") var reorderSeed: UInt64 = 77
    @Option(help: "Lists per test distribution in the final evaluation.") var evalLists = 1000
    @Option(help: "Seed of the evaluation lists.") var evalSeed: UInt64 = 2018
    @Option(name: [.short, .long], help: "Where to write the weights (safetensors).") var output: String?
    @Option(help: "Also write a JSON report (training curve and evaluation) here.") var report: String?

    var seed: UInt64 { seedOptions.seed }

    func check() throws {
        guard (2...5000).contains(count) else { throw ValidationError("--count must be in 2...5000") }
        guard (1...4096).contains(hiddenUnits) else { throw ValidationError("--hidden-units must be in 1...4096") }
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1") }
        guard maxSeconds >= 0, maxSeconds.isFinite else { throw ValidationError("--max-seconds must be non-negative") }
        guard learningRate > 0, learningRate.isFinite else { throw ValidationError("--learning-rate must be positive") }
        if let finalLearningRate, !(finalLearningRate > 0 && finalLearningRate.isFinite) {
            throw ValidationError("--final-learning-rate must be positive")
        }
        guard temperature > 0, temperature.isFinite else { throw ValidationError("--temperature must be positive") }
        guard (1...100_000).contains(iterations) else { throw ValidationError("--iterations must be in 1...100000") }
        guard noiseFactor >= 0, noiseFactor.isFinite else { throw ValidationError("--noise-factor must be non-negative") }
        guard (1...1000).contains(samples) else { throw ValidationError("--samples must be in 1...1000") }
        guard (1...100_000).contains(batchSize) else { throw ValidationError("--batch-size must be in 1...100000") }
        guard evalLists >= 1 else { throw ValidationError("--eval-lists must be at least 1") }
        guard reorderLists >= 0 else { throw ValidationError("--reorder-lists must be non-negative") }
        guard let output, !output.isEmpty else { throw ValidationError("--output must name a file") }
        if zeroFirstBias && noFirstBias { throw ValidationError("--zero-first-bias and --no-first-bias exclude each other") }
    }

    func execute() throws {
        let output = output ?? ""
        BLAS.setThreads(1)
        let configuration = SortingNetworkConfiguration(count: count, hiddenUnits: hiddenUnits,
                                                        inputNormalisation: normalisation, firstLayerBias: !noFirstBias)
        let network = try SortingNetwork(configuration: configuration, seed: seed)
        if zeroFirstBias, let bias = network.firstLayer.bias {
            bias.value = Tensor(shape: bias.shape)
        }
        let settings = SortingTrainingSettings(temperature: temperature, iterations: iterations, noiseFactor: noiseFactor,
                                               samplesPerExample: samples, batchSize: batchSize,
                                               learningRate: learningRate, backward: backward)
        let trainer = try SortingTrainer(network: network, settings: settings, seed: seed &+ 1)
        let progress = ProgressReporter(label: "sort N=\(count)")
        let start = Date()
        var curve: [SortTrainingReport.Point] = []
        var window: [Float] = []
        var done = 0
        var lastLoss: Float = .nan
        for step in 1...steps {
            if let finalLearningRate {
                let fraction = Float(step - 1) / Float(max(1, steps - 1))
                trainer.optimiser.learningRate = learningRate * powf(finalLearningRate / learningRate, fraction)
            }
            let result = try trainer.step()
            window.append(result.loss)
            done = step
            let interval = max(1, steps / 100)
            if step % interval == 0 || step == steps {
                lastLoss = window.reduce(0, +) / Float(window.count)
                window.removeAll(keepingCapacity: true)
                let elapsed = Date().timeIntervalSince(start)
                curve.append(.init(step: step, loss: Double(lastLoss), seconds: elapsed))
                progress.update(done: step, total: steps, fields: [
                    ("loss", String(format: "%.6f", lastLoss)), ("s", String(format: "%.0f", elapsed)),
                ])
            }
            if maxSeconds > 0 && Date().timeIntervalSince(start) >= maxSeconds { break }
        }
        progress.finish()
        let seconds = Date().timeIntervalSince(start)
        var extra = [
            "train.command": commandLine,
            "train.steps": String(done),
            "train.seconds": String(format: "%.1f", seconds),
            "train.final_loss": String(lastLoss),
        ]
        if reorderLists > 0 {
            let order = try network.reorderOutputSlots(lists: reorderLists, seed: reorderSeed)
            extra["train.slots_moved"] = String(order.enumerated().filter { $0.offset != $0.element }.count)
        }
        let results = try writeSortingModel(network, metadata: extra, evalLists: evalLists, evalSeed: evalSeed,
                                            to: output)
        standardError("wrote \(output) after \(done) steps in \(String(format: "%.1f", seconds)) s\n")
        if let report {
            let object = SortTrainingReport(
                count: count, iterations: iterations, backward: backward.rawValue,
                normalisation: normalisation.rawValue, steps: done, seconds: seconds,
                samples: samples, batchSize: batchSize, learningRate: Double(learningRate),
                finalLearningRate: Double(finalLearningRate ?? learningRate),
                curve: curve, evaluation: results.map(evaluationObject),
                command: commandLine)
            try Data((jsonLine(object) + "\n").utf8).write(to: URL(fileURLWithPath: report), options: .atomic)
        }
    }
}

/// Evaluates `network` on Table 1's distributions, prints the table and writes the weights with the
/// configuration, the `eval.*` figures and `extra` as metadata (atomically).
private func writeSortingModel(_ network: SortingNetwork, metadata extra: [String: String], evalLists: Int,
                               evalSeed: UInt64, to output: String) throws -> [SortingEvaluationResult] {
    let results = try evaluateTable1(network, lists: evalLists, seed: evalSeed)
    print(evaluationTable(results))
    var metadata = network.configuration.metadata.merging(extra) { _, new in new }
    let first = results[0]
    metadata["eval.dataset"] = first.distribution.description
    metadata["eval.split"] = "generated (seed \(evalSeed))"
    metadata["eval.lists"] = String(first.lists)
    metadata["eval.prop_wrong"] = String(first.proportionWrong)
    metadata["eval.prop_any_wrong"] = String(first.proportionAnyWrong)
    metadata["eval.kendall_tau"] = String(first.kendallTau)
    metadata["eval.table1"] = jsonLine(results.map(evaluationObject))
    try Safetensors.write(network.namedTensors(), metadata: metadata, toFile: output)
    return results
}

struct SortEvaluateCommand: CheckedCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Prop. wrong, prop. any wrong and Kendall tau on the seven test distributions of Table 1.")

    /// A sorting-network weights file.
    @OptionGroup var weightsOptions: WeightsOptions
    @Option(help: "Lists per test distribution.") var lists = 1000
    @Option(help: "Seed of the lists.") var seed: UInt64 = 2018
    @Flag(help: "Print one JSON object instead of a table.") var json = false

    func check() throws {
        guard lists >= 1 else { throw ValidationError("--lists must be at least 1") }
        _ = try weightsOptions.checkedPath()
    }

    func execute() throws {
        let weights = weightsOptions.weights ?? ""
        BLAS.setThreads(1)
        let file = try ModelFile(contentsOfFile: weights)
        let network = try file.makeSortingNetwork()
        let results = try evaluateTable1(network, lists: lists, seed: seed)
        if json {
            print(jsonLine(SortEvaluationReport(
                weights: weights, count: network.configuration.count,
                normalisation: network.configuration.inputNormalisation.rawValue,
                lists: lists, seed: seed, distributions: results.map(evaluationObject))))
        } else {
            print("\(weights): N = \(network.configuration.count), normalisation \(network.configuration.inputNormalisation.rawValue)")
            print(evaluationTable(results))
        }
    }
}

struct SortReorderCommand: CheckedCommand {
    static let configuration = CommandConfiguration(
        commandName: "reorder",
        abstract: "Reorder a trained network's output slots by their mean rank on U(0,1) lists, re-evaluate and write it.")

    /// A sorting-network weights file.
    @OptionGroup var weightsOptions: WeightsOptions
    @Option(name: [.short, .long], help: "Where to write the reordered weights.") var output: String?
    @Option(help: "U(0,1) lists to average the slot ranks over.") var lists = 5000
    @Option(help: "Seed of those lists (distinct from the evaluation seeds).") var seed: UInt64 = 77
    @Option(help: "Lists per test distribution in the evaluation.") var evalLists = 1000
    @Option(help: "Seed of the evaluation lists.") var evalSeed: UInt64 = 2018

    func check() throws {
        guard lists >= 1, evalLists >= 1 else { throw ValidationError("--lists and --eval-lists must be at least 1") }
        _ = try weightsOptions.checkedPath()
        guard let output, !output.isEmpty else { throw ValidationError("--output must name a file") }
    }

    func execute() throws {
        let weights = weightsOptions.weights ?? "", output = output ?? ""
        BLAS.setThreads(1)
        let file = try ModelFile(contentsOfFile: weights)
        let network = try file.makeSortingNetwork()
        let order = try network.reorderOutputSlots(lists: lists, seed: seed)
        let moved = order.enumerated().filter { $0.offset != $0.element }.count
        standardError("\(moved) slots moved\n")
        var extra = file.metadata.filter { $0.key.hasPrefix("train.") }
        extra["train.slots_moved"] = String(moved)
        extra["train.reorder_command"] = commandLine
        _ = try writeSortingModel(network, metadata: extra, evalLists: evalLists, evalSeed: evalSeed, to: output)
    }
}

/// The settings of one scaling measurement, shared by the parent and the child process.
private struct ScalingSettings {
    var batchSize: Int
    var samples: Int
    var steps: Int
}

struct SortScalingCommand: CheckedCommand {
    static let configuration = CommandConfiguration(
        commandName: "scaling",
        abstract: "Time and peak memory of a training step against n and Sinkhorn iterations for each backward.",
        discussion: """
        Each point runs in a fresh child process; its peak memory is the growth of VmHWM over the \
        child's baseline (network, generator and code loaded). Points whose predicted tape and step \
        tensors exceed --budget-gib are not run and are reported as exceeding the budget.
        """)

    @Option(help: "List lengths n.") var sizes = "200,500,1000"
    @Option(help: "Sinkhorn iteration counts.") var iterations = "10,50,100,200,500,1000"
    @Option(help: "Backwards to measure.") var backwards = "tape,unrolled,implicit"
    @Option(help: "Lists per step.") var batchSize = 10
    @Option(help: "Gumbel samples per list.") var samples = 5
    @Option(help: "Training steps per point (the first is not timed when there are more).") var steps = 2
    @Option(help: "Memory budget in GiB.") var budgetGib = 8.0
    @Option(name: [.short, .long], help: "Write the JSON lines here as well as to standard output.") var output: String?

    func check() throws {
        guard let sizeList = integerList(sizes), sizeList.allSatisfy({ (2...5000).contains($0) }) else {
            throw ValidationError("--sizes must be a comma-separated list of integers in 2...5000")
        }
        guard let iterationList = integerList(iterations), iterationList.allSatisfy({ (1...100_000).contains($0) }) else {
            throw ValidationError("--iterations must be a comma-separated list of integers in 1...100000")
        }
        let kinds = backwards.split(separator: ",").map(String.init)
        guard !kinds.isEmpty, kinds.allSatisfy({ SinkhornBackward(rawValue: $0) != nil }) else {
            throw ValidationError("--backwards must list tape, unrolled and/or implicit")
        }
        guard (1...10_000).contains(batchSize), (1...1000).contains(samples), (1...100).contains(steps) else {
            throw ValidationError("--batch-size, --samples and --steps out of range")
        }
        guard budgetGib > 0, budgetGib.isFinite else { throw ValidationError("--budget-gib must be positive") }
    }

    /// Bytes of the tensors every backward holds during a step: noise, perturbed scores, `log P`,
    /// `P`, `∂ℓ/∂P` and the per-sample gradient, `[B·S, n, n]` each.
    static func commonBytes(matrices: Int, n: Int) -> Int { 6 * matrices * n * n * 4 }

    /// The extra bytes a backward keeps, predicted before running.
    static func predictedStateBytes(_ backward: SinkhornBackward, matrices: Int, n: Int, iterations: Int) -> Int {
        switch backward {
        case .tape: SinkhornTape.predictedBytes(batch: matrices, size: n, iterations: iterations)
        case .unrolled: matrices * iterations * (2 * n + 1) * 4
        case .implicit: 0
        }
    }

    func execute() throws {
        let budget = Int(budgetGib * Double(1 << 30))
        var lines: [String] = []
        let matrices = batchSize * samples
        for n in integerList(sizes) ?? [] {
            for iterationCount in integerList(iterations) ?? [] {
                for kind in backwards.split(separator: ",").compactMap({ SinkhornBackward(rawValue: String($0)) }) {
                    let predicted = Self.predictedStateBytes(kind, matrices: matrices, n: n, iterations: iterationCount)
                        + Self.commonBytes(matrices: matrices, n: n)
                    var line: String
                    if predicted > budget {
                        line = jsonLine(ScalingLine(
                            backward: kind.rawValue, n: n, L: iterationCount, B: batchSize, S: samples,
                            status: "exceeds_budget", predictedBytes: predicted, budgetBytes: budget))
                    } else {
                        line = runChild(kind: kind, n: n, iterations: iterationCount)
                            ?? jsonLine(ScalingLine(backward: kind.rawValue, n: n, L: iterationCount,
                                                    status: "failed", predictedBytes: predicted))
                    }
                    print(line)
                    fflush(nil)
                    lines.append(line)
                    if let output {
                        try Data((lines.joined(separator: "\n") + "\n").utf8)
                            .write(to: URL(fileURLWithPath: output), options: .atomic)
                    }
                }
            }
        }
    }

    private func runChild(kind: SinkhornBackward, n: Int, iterations: Int) -> String? {
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/proc/self/exe")
        child.arguments = ["sort", "scaling-point", "--size", String(n), "--iterations", String(iterations),
                           "--backward", kind.rawValue, "--batch-size", String(batchSize),
                           "--samples", String(samples), "--steps", String(steps)]
        let pipe = Pipe()
        child.standardOutput = pipe
        do {
            try child.run()
        } catch {
            standardError("cannot start the measuring child: \(error)\n")
            return nil
        }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        child.waitUntilExit()
        guard child.terminationStatus == 0 else { return nil }
        return String(data: data, encoding: .utf8)?
            .split(separator: "\n").last.map(String.init)
    }
}

/// One point of `sort scaling`, run in its own process so that `VmHWM` sees only this backward.
struct SortScalingPointCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "scaling-point", shouldDisplay: false)

    @Option var size: Int
    @Option var iterations: Int
    @Option var backward: SinkhornBackward
    @Option var batchSize = 10
    @Option var samples = 5
    @Option var steps = 2

    func validate() throws {
        guard (2...5000).contains(size), (1...100_000).contains(iterations), (1...100).contains(steps),
              (1...10_000).contains(batchSize), (1...1000).contains(samples) else {
            throw ValidationError("scaling-point arguments out of range")
        }
    }

    func run() throws {
        BLAS.setThreads(1)
        let network = try SortingNetwork(configuration: SortingNetworkConfiguration(count: size), seed: 1)
        let settings = SortingTrainingSettings(iterations: iterations, samplesPerExample: samples,
                                               batchSize: batchSize, backward: backward)
        let trainer = try SortingTrainer(network: network, settings: settings, seed: 2)
        let baseline = peakResidentBytes() ?? 0
        var times: [Double] = []
        var state = 0
        for _ in 0..<steps {
            let start = DispatchTime.now().uptimeNanoseconds
            state = try trainer.step().backwardStateBytes
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        let peak = peakResidentBytes() ?? 0
        let timed = times.count > 1 ? Array(times.dropFirst()) : times
        let sorted = timed.sorted()
        let median = sorted.count % 2 == 1 ? sorted[sorted.count / 2]
            : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        print(jsonLine(ScalingLine(
            backward: backward.rawValue, n: size, L: iterations, B: batchSize, S: samples, status: "ok",
            ms: median, firstStepMs: times[0], peakBytes: peak - baseline, vmHwmBytes: peak,
            baselineBytes: baseline, stateBytes: state, steps: steps)))
    }
}

/// The JSON of `sort gradient-accuracy`, in the layout `scripts/barycenter_plots.py accuracy` reads.
private struct SortGradientAccuracyReport: Encodable {
    var title: String
    var command: String
    var count: Int
    var lists: Int
    var gradientAccuracy: [GradientAccuracyHistogram]
}

struct SortGradientAccuracyCommand: CheckedCommand {
    static let configuration = CommandConfiguration(
        commandName: "gradient-accuracy",
        abstract: "The error of ∂loss/∂X through τ Sinkhorn iterations against a converged reference, per backward (Eisenberger et al. 2022, Figure 5).",
        discussion: """
        For noiseless scores X of a trained network on fresh U(0,1) lists, the sorting loss's \
        gradient with respect to X with τ iterations (implicit or unrolled) is compared, entry by \
        entry and relative to the reference's largest entry, with the implicit gradient after \
        --reference-iterations iterations (its marginal error is printed).
        """)

    /// A sorting-network weights file.
    @OptionGroup var weightsOptions: WeightsOptions
    @Option(help: "Sinkhorn iteration counts τ, comma-separated.") var iterations = "10,50,100,200"
    @Option(help: "Backwards, comma-separated: implicit, unrolled.") var backwards = "implicit,unrolled"
    @Option(help: "Iterations of the reference gradient.") var referenceIterations = 3000
    @Option(help: "U(0,1) lists.") var lists = 10
    @Option(help: "Seed of the lists.") var seed: UInt64 = 5
    @Option(help: "Write the JSON here.") var json: String?

    func check() throws {
        _ = try weightsOptions.checkedPath()
        guard integerList(iterations)?.allSatisfy({ (1...100_000).contains($0) }) == true else {
            throw ValidationError("--iterations must be a comma-separated list of integers in 1...100000")
        }
        guard transportBackwards(backwards) != nil else { throw ValidationError("--backwards must list implicit and/or unrolled") }
        guard (10...100_000).contains(referenceIterations) else { throw ValidationError("--reference-iterations must be in 10...100000") }
        guard (1...10_000).contains(lists) else { throw ValidationError("--lists must be in 1...10000") }
    }

    func execute() throws {
        let file = try ModelFile(contentsOfFile: weightsOptions.weights ?? "")
        let network = try file.makeSortingNetwork()
        let n = network.configuration.count
        var generator = SeededGenerator(seed: seed)
        let numbers = generator.uniform([lists, n])
        let scores = network.forward(numbers)
        let noise = Tensor(shape: [lists, n, n])
        func gradient(_ tau: Int, _ backward: SinkhornBackward) throws -> Tensor {
            let settings = SortingTrainingSettings(temperature: 1, iterations: tau, noiseFactor: 0, samplesPerExample: 1,
                                                   batchSize: lists, backward: backward)
            return try SortingLoss.valueAndScoresGradient(lists: numbers, scores: scores, noise: noise, settings: settings).scoresGradient
        }
        let reference = try gradient(referenceIterations, .implicit)
        let converged = try Sinkhorn.forward(scores, temperature: 1, iterations: referenceIterations)
        let referenceError = converged.marginalError.max() ?? 0
        let size = n * n
        var scales: [Float] = []
        for list in 0..<lists {
            scales.append(reference.storage[(list * size)..<((list + 1) * size)].map(abs).max() ?? 1)
        }
        var entries: [GradientAccuracyHistogram] = []
        for backward in transportBackwards(backwards)! {
            for tau in integerList(iterations)! {
                let got = try gradient(tau, backward == .implicit ? .implicit : .unrolled)
                var errors: [Float] = []
                errors.reserveCapacity(got.count)
                for index in 0..<got.count {
                    errors.append(abs(got.storage[index] - reference.storage[index]) / scales[index / size])
                }
                let entry = GradientAccuracyHistogram(backward: backward.rawValue, iterations: tau,
                                                              referenceIterations: referenceIterations,
                                                              referenceMarginalError: referenceError, errors: errors)
                entries.append(entry)
                print(String(format: "%@ τ=%d: relative error median %.2e, 90th percentile %.2e, max %.2e",
                             backward.rawValue, tau, entry.median, entry.percentile90, entry.maximum))
            }
        }
        print(String(format: "reference: implicit after %d iterations, marginal error %.1e", referenceIterations, referenceError))
        if let json {
            let report = SortGradientAccuracyReport(
                title: "Gradient accuracy of the sorting network, N = \(n) (relative error of ∂loss/∂X, per entry)",
                command: commandLine, count: n, lists: lists, gradientAccuracy: entries)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            try encoder.encode(report).write(to: URL(fileURLWithPath: json), options: .atomic)
        }
    }
}
