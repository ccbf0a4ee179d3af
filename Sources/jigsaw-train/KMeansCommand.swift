import ArgumentParser
import Foundation
import Jigsaw
import NeuralNet
import Permutations
import TensorKit

/// `jigsaw-train kmeans`: Figure 8 of Eisenberger et al. 2022 — k-means of MNIST images with
/// balanced Sinkhorn assignments in the loss, for each backward and several iteration counts.
struct KMeansCommand: CheckedCommand {
    static let configuration = CommandConfiguration(
        commandName: "kmeans",
        abstract: "MNIST k-means with balanced Sinkhorn assignments in the loss (Eisenberger et al. 2022, Figure 8).",
        discussion: """
        Every run starts from the same centroids (k training images drawn with --seed) and sees the \
        same batches. A step draws a batch of training images, computes C_ij = ‖x_i − μ_j‖² / 784, \
        the balanced Sinkhorn plan P (rows 1/B, columns 1/k) after τ iterations, the loss ⟨C, P⟩ and \
        its gradient through the chosen backward, and takes an Adam step on the centroids. Purity is \
        measured on the whole test split with hard nearest-centroid assignments. --image draws one \
        panel of centroids per backward (rows) and τ (columns).
        """)

    @Option(help: "MNIST directory (IDX files).") var dataDir: String
    @Option(help: "Clusters k.") var clusters = 25
    @Option(help: "Sinkhorn iteration counts τ, comma-separated.") var iterations = "5,10,50,100"
    @Option(help: "Backwards, comma-separated: implicit, unrolled.") var backwards = "implicit,unrolled"
    @Option(help: "Images per batch.") var batchSize = 1024
    @Option(help: "Adam steps per run.") var steps = 500
    @Option(help: "Adam learning rate.") var learningRate: Float = 0.01
    @Option(help: "Entropy λ of the assignment (the cost is a mean squared pixel difference).") var entropy: Float = 0.002
    @Option(help: "Seed of the initial centroids and of the batches.") var seed: UInt64 = 1
    @Option(help: "Iterations of Lloyd's k-means (hard assignments, whole training split, same start) for the baseline; 0 skips it.")
    var lloydIterations = 30
    @Option(help: "Budget in MB for the largest batch each backward fits: the bytes the backward holds (potentials, scratch), searched by doubling from 64; 0 skips it.")
    var memoryBudgetMb = 0.0
    @Option(help: "Write the results as JSON here.") var json: String?
    @Option(help: "Write the picture of the centroids (PNG) here.") var image: String?

    func check() throws {
        guard FileManager.default.fileExists(atPath: dataDir) else { throw ValidationError("--data-dir \(dataDir) does not exist") }
        guard (2...256).contains(clusters) else { throw ValidationError("--clusters must be in 2...256") }
        guard integerList(iterations)?.allSatisfy({ (1...10_000).contains($0) }) == true else {
            throw ValidationError("--iterations must be a comma-separated list of integers in 1...10000")
        }
        guard backwardList != nil else { throw ValidationError("--backwards must list implicit and/or unrolled") }
        guard (2...60_000).contains(batchSize) else { throw ValidationError("--batch-size must be in 2...60000") }
        guard (0...100_000).contains(steps) else { throw ValidationError("--steps must be in 0...100000") }
        guard learningRate.isFinite, learningRate > 0 else { throw ValidationError("--learning-rate must be positive") }
        guard entropy.isFinite, entropy > 0 else { throw ValidationError("--entropy must be positive") }
        guard (0...1000).contains(lloydIterations) else { throw ValidationError("--lloyd-iterations must be in 0...1000") }
        guard memoryBudgetMb.isFinite, memoryBudgetMb >= 0 else { throw ValidationError("--memory-budget-mb must not be negative") }
        if json == nil, image == nil { throw ValidationError("give --json and/or --image") }
    }

    var backwardList: [TransportBackward]? { transportBackwards(backwards) }

    func execute() throws {
        let train = try ImageDataset.mnist(directory: dataDir, split: .train)
        let test = try ImageDataset.mnist(directory: dataDir, split: .test)
        guard let testLabels = test.labels else { throw ValidationError("the test split has no labels") }
        let d = train.imageSize
        var rng = SeededGenerator(seed: seed)
        let starts = (0..<clusters).map { _ in rng.nextInt(below: train.count) }
        let initial = gather(train, starts)
        let batches = (0..<steps).map { _ in (0..<batchSize).map { _ in rng.nextInt(below: train.count) } }
        let testPoints = test.tensor().reshaped([test.count, d])
        let iterationList = integerList(iterations)!
        var report = KMeansReport(clusters: clusters, batchSize: batchSize, steps: steps, learningRate: learningRate,
                                  entropy: entropy, seed: seed, command: recordedCommandLine(), side: train.width,
                                  initialPurity: SinkhornKMeans.purity(
                                      clusters: SinkhornKMeans.nearest(points: testPoints, centroids: initial),
                                      labels: testLabels, clusterCount: clusters),
                                  runs: [])
        if lloydIterations > 0 {
            let centroids = lloyd(train, start: initial, iterations: lloydIterations)
            report.lloydPurity = SinkhornKMeans.purity(clusters: SinkhornKMeans.nearest(points: testPoints, centroids: centroids),
                                                       labels: testLabels, clusterCount: clusters)
            report.lloydIterations = lloydIterations
        }
        if memoryBudgetMb > 0 {
            report.memoryBudgetMB = memoryBudgetMb
            report.largestBatch = try largestBatches(train, initial: initial, taus: iterationList)
        }
        let progress = ProgressReporter(label: "kmeans")
        let total = backwardList!.count * iterationList.count * steps
        var done = 0
        for backward in backwardList! {
            for tau in iterationList {
                let centroids = Parameter(name: "centroids", value: initial)
                let optimiser = Adam(parameters: [centroids], learningRate: learningRate)
                var losses: [Float] = []
                var peak = 0
                let workspace = SinkhornWorkspace(), backwardWorkspace = SinkhornWorkspace()
                let started = Date()
                for batch in batches {
                    let points = gather(train, batch)
                    let result = try SinkhornKMeans.step(points: points, centroids: centroids.value, entropy: entropy,
                                                         iterations: tau, backward: backward, workspace: workspace,
                                                         backwardWorkspace: backwardWorkspace)
                    centroids.gradient = result.gradient
                    optimiser.step()
                    losses.append(result.loss)
                    peak = Swift.max(peak, result.backwardBytes)
                    done += 1
                    progress.update(done: done, total: total, fields: [("backward", backward.rawValue), ("τ", "\(tau)"),
                                                                       ("loss", String(format: "%.5f", result.loss))])
                }
                let seconds = Date().timeIntervalSince(started)
                let purity = SinkhornKMeans.purity(clusters: SinkhornKMeans.nearest(points: testPoints, centroids: centroids.value),
                                                   labels: testLabels, clusterCount: clusters)
                report.runs.append(.init(backward: backward.rawValue, iterations: tau, testPurity: purity, losses: losses,
                                         seconds: seconds, secondsPerStep: steps > 0 ? seconds / Double(steps) : 0,
                                         peakBackwardBytes: peak, centroids: centroids.value.storage))
            }
        }
        progress.finish()
        print(String(format: "initial centroids: test purity %.4f", report.initialPurity))
        if let lloyd = report.lloydPurity {
            print(String(format: "Lloyd's k-means, %d iterations from the same start: test purity %.4f", lloydIterations, lloyd))
        }
        for entry in report.largestBatch ?? [] {
            print("largest batch within \(memoryBudgetMb) MB: \(entry.backward) τ=\(entry.iterations): \(entry.batch)"
                  + (entry.capped ? " (the search's cap)" : "") + " (\(entry.bytes) bytes)")
        }
        for run in report.runs {
            print(String(format: "%@ τ=%d: test purity %.4f, final loss %.5f, %.3f s per step, backward holds %.2f MB",
                         run.backward, run.iterations, run.testPurity, run.losses.last ?? 0, run.secondsPerStep,
                         Double(run.peakBackwardBytes) / 1e6))
        }
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            try encoder.encode(report).write(to: URL(fileURLWithPath: json), options: .atomic)
        }
        if let image { try writeImage(report, taus: iterationList, to: image) }
    }

    /// Lloyd's algorithm on the whole training split: nearest centroid, then every centroid moved
    /// to the mean of its points (an empty cluster keeps its centroid).
    func lloyd(_ data: ImageDataset, start: Tensor, iterations: Int) -> Tensor {
        let d = data.imageSize
        let points = data.tensor().reshaped([data.count, d])
        var centroids = start
        for _ in 0..<iterations {
            let assignment = SinkhornKMeans.nearest(points: points, centroids: centroids)
            var sums = [Double](repeating: 0, count: clusters * d)
            var counts = [Int](repeating: 0, count: clusters)
            points.withUnsafeBufferPointer { x in
                for (i, j) in assignment.enumerated() {
                    counts[j] += 1
                    for c in 0..<d { sums[j * d + c] += Double(x[i * d + c]) }
                }
            }
            for j in 0..<clusters where counts[j] > 0 {
                for c in 0..<d { centroids.storage[j * d + c] = Float(sums[j * d + c] / Double(counts[j])) }
            }
        }
        return centroids
    }

    /// For every backward and `τ`, the largest batch (64, 128, … up to the training split) whose
    /// step's `backwardBytes` stays within the budget.
    func largestBatches(_ data: ImageDataset, initial: Tensor, taus: [Int]) throws -> [KMeansReport.Capacity] {
        let budget = Int(memoryBudgetMb * 1e6)
        var answer: [KMeansReport.Capacity] = []
        for backward in backwardList! {
            for tau in taus {
                var best = 0, bytesAtBest = 0, batch = 64, capped = false
                while batch <= data.count {
                    let points = gather(data, Array(0..<batch))
                    let step = try SinkhornKMeans.step(points: points, centroids: initial, entropy: entropy,
                                                       iterations: tau, backward: backward)
                    guard step.backwardBytes <= budget else { break }
                    (best, bytesAtBest) = (batch, step.backwardBytes)
                    if batch == data.count { capped = true; break }
                    batch = Swift.min(batch * 2, data.count)
                }
                answer.append(.init(backward: backward.rawValue, iterations: tau, batch: best, bytes: bytesAtBest, capped: capped))
            }
        }
        return answer
    }

    /// The images at `indices` as rows of a `[count, d]` tensor of pixels in [0, 1].
    func gather(_ data: ImageDataset, _ indices: [Int]) -> Tensor {
        data.tensor(indices: indices).reshaped([indices.count, data.imageSize])
    }

    /// Panels of `ceil(√k)` columns of centroids, one per run: rows of panels per backward,
    /// columns per τ; each centroid scaled to its own maximum.
    func writeImage(_ report: KMeansReport, taus: [Int], to path: String) throws {
        let side = report.side, k = report.clusters
        let perRow = Int(Double(k).squareRoot().rounded(.up))
        let rowsOfCentroids = (k + perRow - 1) / perRow
        let cell = side + 1, panelGap = 10
        let (panelWidth, panelHeight) = (perRow * cell - 1, rowsOfCentroids * cell - 1)
        let names = report.runs.reduce(into: [String]()) { if !$0.contains($1.backward) { $0.append($1.backward) } }
        let width = taus.count * panelWidth + (taus.count - 1) * panelGap
        let height = names.count * panelHeight + (names.count - 1) * panelGap
        var picture = Image(width: width, height: height, channels: 1, repeating: 64)
        for run in report.runs {
            guard let column = taus.firstIndex(of: run.iterations), let row = names.firstIndex(of: run.backward) else { continue }
            let (px, py) = (column * (panelWidth + panelGap), row * (panelHeight + panelGap))
            for j in 0..<k {
                picture.paint(run.centroids[(j * side * side)..<((j + 1) * side * side)], side: side,
                              x: px + (j % perRow) * cell, y: py + (j / perRow) * cell)
            }
        }
        try Data(try PNG.encode(picture)).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}

/// The JSON written by `jigsaw-train kmeans`.
struct KMeansReport: Codable {
    struct Run: Codable {
        var backward: String
        var iterations: Int
        var testPurity: Double
        var losses: [Float]
        var seconds: Double
        var secondsPerStep: Double
        var peakBackwardBytes: Int
        var centroids: [Float]
    }
    var clusters: Int
    var batchSize: Int
    var steps: Int
    var learningRate: Float
    var entropy: Float
    var seed: UInt64
    var command: String
    var side: Int
    var initialPurity: Double
    var runs: [Run]
    var lloydIterations: Int?
    var lloydPurity: Double?
    var memoryBudgetMB: Double?
    var largestBatch: [Capacity]?

    struct Capacity: Codable {
        var backward: String
        var iterations: Int
        var batch: Int
        var bytes: Int
        var capped: Bool
    }
}
