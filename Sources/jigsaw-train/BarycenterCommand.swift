import ArgumentParser
import Foundation
import Jigsaw
import Permutations
import TensorKit

extension TransportBackward: ExpressibleByArgument {}

/// Parses `"implicit,unrolled"`; nil when empty or a name is unknown.
func transportBackwards(_ text: String) -> [TransportBackward]? {
    let parts = text.split(separator: ",").map { TransportBackward(rawValue: String($0)) }
    guard !parts.isEmpty, parts.allSatisfy({ $0 != nil }) else { return nil }
    return parts.compactMap { $0 }
}

/// `jigsaw-train barycenter`: Figure 3 of Eisenberger et al. 2022 — Wasserstein barycenters of four
/// corner images with bilinear weights, by mirror descent through a Sinkhorn layer with the
/// implicit or the unrolled backward, for several iteration counts.
struct BarycenterCommand: CheckedCommand {
    static let configuration = CommandConfiguration(
        commandName: "barycenter",
        abstract: "Wasserstein barycenters of four corner images through a Sinkhorn layer (Eisenberger et al. 2022, Figure 3).",
        discussion: """
        The four inputs sit at the corners (0, 0), (1, 0), (0, 1), (1, 1) of a square; the five \
        centroids at the edge midpoints and the centre get the bilinear weights of their position. \
        Each centroid minimises Σ_k w_k ⟨C, P_λ(b, a_k)⟩ by entropic mirror descent from the uniform \
        histogram, with τ Sinkhorn iterations per transport problem and the chosen backward. The \
        JSON holds every centroid and its energies; --image draws one 3 × 3 panel per backward (rows) \
        and τ (columns). --plot redraws the picture from a JSON written earlier.
        """)

    @Option(help: "Image side in pixels (the grid has side² bins).") var size = 32
    @Option(help: "Inputs: shapes (disc, ring, square outline, cross) or mnist (test digits 0, 1, 2, 3, resized).")
    var inputs = "shapes"
    @Option(help: "MNIST directory for --inputs mnist.") var dataDir: String?
    @Option(help: "Entropy λ of the transport problems (normalised coordinates in [0, 1]).") var entropy: Float = 0.002
    @Option(help: "Sinkhorn iteration counts τ, comma-separated.") var iterations = "5,10,50,100"
    @Option(help: "Backwards, comma-separated: implicit, unrolled.") var backwards = "implicit,unrolled"
    @Option(name: .customLong("implicit-solver"),
            help: "The implicit backward's linear solve: dense (Cholesky, exact) or cg (matrix-free conjugate gradients to a relative residual of 1e-6; far faster at 64²). Default: dense with --kernel dense, cg with --kernel separable.")
    var implicitSolver: String?
    @Option(help: "How each transport problem is computed: dense (the n × n cost and plan; sides up to 96) or separable (the kernel one axis at a time, O(n) memory and 15–70× faster per transport problem at 64²; sides up to 256; its implicit backward uses conjugate gradients unless --implicit-solver dense asks for the formed plan).")
    var kernel = "dense"
    @Option(help: "Mirror-descent steps per centroid.") var steps = 40
    @Option(help: "Initial mirror-descent step size η (halved when a step raises the energy, unless --no-backtracking).") var stepSize: Float = 20
    @Option(help: "Least share of the mass in every bin of an input image.") var floor: Float = 1e-5
    @Option(help: "Write the results as JSON here.") var json: String?
    @Option(help: "Write the picture (PNG) here.") var image: String?
    @Option(help: "Draw --image from this JSON instead of computing.") var plot: String?
    @Option(help: "Pixels per histogram bin in --image.") var zoom = 2
    @Flag(help: "Plain mirror descent: take every step, never halve the step size.") var noBacktracking = false
    @Flag(help: "Also measure the gradients' error against a converged reference (Figure 5).") var gradientAccuracy = false
    @Option(help: "Sinkhorn iterations of the reference gradient for --gradient-accuracy.") var referenceIterations = 3000
    @Option(help: "Seed of the random histograms --gradient-accuracy differentiates at.") var seed: UInt64 = 5
    @Option(name: .customLong("gradient-figure"),
            help: "Figure 6 instead: the barycenter of the first two inputs (weights ½, ½) along plain mirror descent with the implicit backward at the first τ, and at every snapshot ∂E/∂b by each backward and by the converged reference; a PNG here (its JSON beside it with .json).")
    var gradientFigure: String?
    @Option(name: .customLong("snapshots"), help: "Mirror-descent steps of the --gradient-figure snapshots, comma-separated.")
    var snapshots = "0,10,20,30,40,50,60,70"

    func check() throws {
        guard ["dense", "separable"].contains(kernel) else { throw ValidationError("--kernel must be dense or separable") }
        let largest = kernel == "dense" ? 96 : 256
        guard (2...largest).contains(size) else {
            throw ValidationError("--size must be in 2...\(largest) with --kernel \(kernel)"
                                  + (kernel == "dense" ? " (--kernel separable goes to 256)" : ""))
        }
        guard ["shapes", "mnist"].contains(inputs) else { throw ValidationError("--inputs must be shapes or mnist") }
        if inputs == "mnist", dataDir == nil, plot == nil { throw ValidationError("--inputs mnist needs --data-dir") }
        guard entropy.isFinite, entropy > 0 else { throw ValidationError("--entropy must be positive") }
        guard integerList(iterations)?.allSatisfy({ (1...10_000).contains($0) }) == true else {
            throw ValidationError("--iterations must be a comma-separated list of integers in 1...10000")
        }
        guard backwardList != nil else { throw ValidationError("--backwards must list implicit and/or unrolled") }
        guard (0...10_000).contains(steps) else { throw ValidationError("--steps must be in 0...10000") }
        if let implicitSolver, !["dense", "cg"].contains(implicitSolver) { throw ValidationError("--implicit-solver must be dense or cg") }
        guard stepSize.isFinite, stepSize > 0 else { throw ValidationError("--step-size must be positive") }
        guard floor.isFinite, floor > 0, floor < 1 else { throw ValidationError("--floor must be in (0, 1)") }
        guard (10...100_000).contains(referenceIterations) else {
            throw ValidationError("--reference-iterations must be in 10...100000")
        }
        guard (1...8).contains(zoom) else { throw ValidationError("--zoom must be in 1...8") }
        if plot != nil, image == nil { throw ValidationError("--plot needs --image") }
        guard let snapshotSteps = integerList(snapshots), !snapshotSteps.isEmpty, snapshotSteps.allSatisfy({ (0...10_000).contains($0) }),
              snapshotSteps == snapshotSteps.sorted() else {
            throw ValidationError("--snapshots must be increasing integers in 0...10000")
        }
        if plot == nil, json == nil, image == nil, gradientFigure == nil {
            throw ValidationError("give --json and/or --image, or --gradient-figure")
        }
    }

    var backwardList: [TransportBackward]? { transportBackwards(backwards) }
    /// The implicit backward's solve: `--implicit-solver`, where the separable kernel's default
    /// (no explicit `dense`) is conjugate gradients.
    var solver: ImplicitSolver {
        (implicitSolver ?? (kernel == "separable" ? "cg" : "dense")) == "cg" ? .conjugateGradient() : .dense
    }
    /// The solver name recorded in the results.
    var solverName: String { solver == .dense ? "dense" : "cg" }

    /// The transport problems of this run.
    func transport() throws -> BarycenterTransport {
        if kernel == "separable" {
            return BarycenterTransport(entropy: entropy, cost: nil,
                                       grid: try SeparableGridTransport(width: size, height: size, entropy: entropy))
        }
        return BarycenterTransport(entropy: entropy, cost: try GridTransport.squaredDistanceCost(width: size, height: size),
                                   grid: nil)
    }

    func execute() throws {
        if let plot {
            let data: Data
            do {
                data = try Data(contentsOf: URL(fileURLWithPath: plot))
            } catch {
                throw ValidationError("cannot read \(plot): \(error.localizedDescription)")
            }
            let report: BarycenterReport
            do {
                report = try JSONDecoder().decode(BarycenterReport.self, from: data)
            } catch {
                throw ValidationError("\(plot) is not a JSON written by jigsaw-train barycenter: \(error)")
            }
            if let problem = report.problem { throw ValidationError("\(plot): \(problem)") }
            try writeImage(report, to: image!)
            return
        }
        let images = try inputImages()
        let histograms = try images.map { try WassersteinBarycenter.histogram(of: $0, floor: floor) }
        let cost = try transport()
        if let gradientFigure {
            try drawGradientFigure(histograms: Array(histograms.prefix(2)), cost: cost, to: gradientFigure)
            return
        }
        let positions: [(s: Float, t: Float)] = [(0.5, 0), (0, 0.5), (0.5, 0.5), (1, 0.5), (0.5, 1)]
        var report = BarycenterReport(size: size, entropy: entropy, steps: steps, stepSize: stepSize,
                                      backtracking: !noBacktracking, floor: floor,
                                      inputs: inputs, command: recordedCommandLine(), images: histograms, runs: [],
                                      gradientAccuracy: nil, implicitSolver: solverName, kernel: kernel)
        let iterationList = integerList(iterations)!
        let total = backwardList!.count * iterationList.count * positions.count * steps
        let progress = ProgressReporter(label: "barycenter")
        var done = 0
        for backward in backwardList! {
            for tau in iterationList {
                var run = BarycenterReport.Run(backward: backward.rawValue, iterations: tau, centroids: [])
                for position in positions {
                    let weights = WassersteinBarycenter.bilinearWeights(s: position.s, t: position.t)
                    let started = Date()
                    let result = try cost.compute(
                        inputs: histograms, weights: weights, iterations: tau,
                        backward: backward, solver: solver, steps: steps, stepSize: stepSize,
                        backtracking: !noBacktracking, start: nil) { _, energy in
                        done += 1
                        progress.update(done: done, total: total,
                                        fields: [("backward", backward.rawValue), ("τ", "\(tau)"),
                                                 ("E", String(format: "%.5f", energy))])
                    }
                    let seconds = Date().timeIntervalSince(started)
                    run.centroids.append(.init(s: position.s, t: position.t, weights: weights, histogram: result.histogram,
                                               energies: result.energies, seconds: seconds,
                                               secondsPerStep: steps > 0 ? seconds / Double(steps) : 0,
                                               peakBackwardBytes: result.peakBackwardBytes,
                                               evaluations: result.evaluations))
                }
                report.runs.append(run)
            }
        }
        progress.finish()
        for run in report.runs {
            let perStep = run.centroids.map(\.secondsPerStep).reduce(0, +) / Double(run.centroids.count)
            let energy = run.centroids.map { Double($0.energies.last ?? 0) }.reduce(0, +) / Double(run.centroids.count)
            let bytes = run.centroids.map(\.peakBackwardBytes).max() ?? 0
            let evaluations = run.centroids.map(\.evaluations).reduce(0, +)
            print(String(format: "%@ τ=%d: mean final energy %.6f, %.3f s per step, %d evaluations, backward holds %.1f MB",
                         run.backward, run.iterations, energy, perStep, evaluations, Double(bytes) / 1e6))
        }
        if gradientAccuracy {
            report.gradientAccuracy = try measureGradientAccuracy(histograms: histograms, cost: cost,
                                                                  positions: positions, iterationList: iterationList)
            for entry in report.gradientAccuracy ?? [] {
                print(String(format: "gradient %@ τ=%d: relative error median %.2e, 90th percentile %.2e, max %.2e",
                             entry.backward, entry.iterations, entry.median, entry.percentile90, entry.maximum))
            }
        }
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            try encoder.encode(report).write(to: URL(fileURLWithPath: json), options: .atomic)
        }
        if let image { try writeImage(report, to: image) }
    }

    /// Figure 5's measurement: at the uniform histogram and at `seed`-drawn random histograms,
    /// for each centroid's weights, the error of `∂E/∂b` with `τ` iterations and each backward
    /// against the implicit gradient of a forward run for `referenceIterations` (converged: its
    /// marginal error is reported), per bin, relative to the reference's largest entry.
    func measureGradientAccuracy(histograms: [[Float]], cost: BarycenterTransport, positions: [(s: Float, t: Float)],
                                 iterationList: [Int]) throws -> [GradientAccuracyHistogram] {
        let n = size * size
        var rng = SeededGenerator(seed: seed)
        var points = [[Float](repeating: 1 / Float(n), count: n)]
        for _ in 0..<2 {
            let raw = (0..<n).map { _ in 0.05 + rng.nextUniform() }
            let total = raw.reduce(0, +)
            points.append(raw.map { $0 / total })
        }
        var references: [(point: [Float], weights: [Float], gradient: [Float], scale: Float)] = []
        var referenceError: Float = 0
        for point in points {
            for position in positions {
                let weights = WassersteinBarycenter.bilinearWeights(s: position.s, t: position.t)
                let value = try cost.energy(of: point, inputs: histograms, weights: weights,
                                            iterations: referenceIterations, backward: .implicit,
                                            solver: cost.referenceSolver)
                referenceError = Swift.max(referenceError, value.marginalError)
                references.append((point, weights, value.gradient, value.gradient.map(abs).max() ?? 1))
            }
        }
        var answer: [GradientAccuracyHistogram] = []
        let progress = ProgressReporter(label: "gradient accuracy")
        let total = backwardList!.count * iterationList.count
        for backward in backwardList! {
            for tau in iterationList {
                var errors: [Float] = []
                for reference in references {
                    let value = try cost.energy(of: reference.point, inputs: histograms, weights: reference.weights,
                                                iterations: tau, backward: backward, solver: solver)
                    for (got, want) in zip(value.gradient, reference.gradient) {
                        errors.append(abs(got - want) / reference.scale)
                    }
                }
                answer.append(.init(backward: backward.rawValue, iterations: tau, referenceIterations: referenceIterations,
                                    referenceMarginalError: referenceError, errors: errors))
                progress.update(done: answer.count, total: total, fields: [("backward", backward.rawValue), ("τ", "\(tau)")])
            }
        }
        progress.finish()
        return answer
    }

    /// Figure 6 of Eisenberger et al.: the barycenter of two inputs with weights ½, ½ along plain
    /// mirror descent (implicit backward, the first τ), and at each snapshot `∂E/∂b` by every
    /// backward at that τ and by the implicit backward after `referenceIterations` iterations.
    /// Rows of the picture: the two inputs, the snapshots, then one row of gradients per backward
    /// and the reference's (gray is 0; every column scaled by the reference's largest magnitude).
    func drawGradientFigure(histograms: [[Float]], cost: BarycenterTransport, to path: String) throws {
        let tau = integerList(iterations)![0], steps = integerList(snapshots)!
        let weights: [Float] = [0.5, 0.5]
        var current = [Float](repeating: 1 / Float(size * size), count: size * size)
        var done = 0
        struct Snapshot: Codable {
            var step: Int
            var histogram: [Float]
            var gradients: [String: [Float]]
            /// max |g − reference| / max |reference| per backward.
            var relativeErrors: [String: Float]
            /// The median over bins of |g − reference| / max |reference| per backward.
            var medianRelativeErrors: [String: Float]
        }
        var shots: [Snapshot] = []
        let progress = ProgressReporter(label: "gradient figure")
        for step in steps {
            if step > done {
                current = try cost.compute(
                    inputs: histograms, weights: weights, iterations: tau, backward: .implicit,
                    solver: solver, steps: step - done, stepSize: stepSize, backtracking: false, start: current,
                    progress: nil).histogram
                done = step
            }
            let reference = try cost.energy(of: current, inputs: histograms, weights: weights,
                                            iterations: referenceIterations, backward: .implicit,
                                            solver: cost.referenceSolver).gradient
            let scale = reference.map(abs).max() ?? 1
            var shot = Snapshot(step: step, histogram: current, gradients: ["reference": reference], relativeErrors: [:],
                                medianRelativeErrors: [:])
            for backward in backwardList! {
                let gradient = try cost.energy(of: current, inputs: histograms, weights: weights,
                                               iterations: tau, backward: backward, solver: solver).gradient
                shot.gradients[backward.rawValue] = gradient
                let errors = zip(gradient, reference).map { abs($0 - $1) / scale }.sorted()
                shot.relativeErrors[backward.rawValue] = errors.last ?? 0
                shot.medianRelativeErrors[backward.rawValue] = errors.isEmpty ? 0 : errors[errors.count / 2]
            }
            shots.append(shot)
            progress.update(done: shots.count, total: steps.count, fields: [("t", "\(step)")])
        }
        progress.finish()
        for shot in shots {
            print("t=\(shot.step): " + backwardList!.map {
                String(format: "%@ error median %.3e, max %.3e", $0.rawValue, shot.medianRelativeErrors[$0.rawValue] ?? 0,
                       shot.relativeErrors[$0.rawValue] ?? 0)
            }.joined(separator: ", ") + " (relative to the reference's largest entry)")
        }
        struct Figure: Codable {
            var size: Int, entropy: Float, iterations: Int, referenceIterations: Int, stepSize: Float, command: String
            var implicitSolver: String
            var kernel: String
            var inputs: [[Float]]
            var snapshots: [Snapshot]
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let figure = Figure(size: size, entropy: entropy, iterations: tau, referenceIterations: referenceIterations,
                            stepSize: stepSize, command: recordedCommandLine(), implicitSolver: solverName, kernel: kernel,
                            inputs: histograms, snapshots: shots)
        try encoder.encode(figure).write(to: URL(fileURLWithPath: (path as NSString).deletingPathExtension + ".json"), options: .atomic)
        // The picture.
        let side = size * zoom, gap = 2
        let rows = 2 + backwardList!.count + 1
        let width = shots.count * side + (shots.count - 1) * gap, height = rows * side + (rows - 1) * gap
        var picture = Image(width: width, height: height, channels: 1, repeating: 48)
        for (k, input) in histograms.enumerated() { picture.paint(input, side: size, zoom: zoom, x: k * (side + gap), y: 0) }
        for (column, shot) in shots.enumerated() {
            let x = column * (side + gap)
            picture.paint(shot.histogram, side: size, zoom: zoom, x: x, y: side + gap)
            let reference = shot.gradients["reference"]!
            let scale = reference.map(abs).max() ?? 1
            for (row, name) in (backwardList!.map(\.rawValue) + ["reference"]).enumerated() {
                let gradient = shot.gradients[name]!
                let y = (2 + row) * (side + gap)
                for py in 0..<side {
                    for px in 0..<side {
                        let value = gradient[(py / zoom) * size + px / zoom] / Swift.max(scale, 1e-30)
                        picture.pixels[(y + py) * width + x + px] = UInt8((128 + 127 * Swift.max(-1, Swift.min(1, value))).rounded())
                    }
                }
            }
        }
        try Data(try PNG.encode(picture)).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// The four corner images, `size²` pixels each, row-major.
    func inputImages() throws -> [[Float]] {
        if inputs == "mnist" {
            let data = try ImageDataset.mnist(directory: dataDir!, split: .test)
            var chosen: [[Float]] = []
            for digit in 0..<4 {
                guard let index = data.labels?.firstIndex(of: digit) else {
                    throw ValidationError("the MNIST test split has no digit \(digit)")
                }
                let resized = data.image(at: index).resized(width: size, height: size,
                                                            filter: size < data.width ? .area : .bilinear)
                chosen.append(resized.pixels.map { Float($0) / 255 })
            }
            return chosen
        }
        return ["disc", "ring", "square", "cross"].map { Self.shape($0, size: size) }
    }

    /// A shape on `[-1, 1]²` sampled at pixel centres.
    static func shape(_ name: String, size: Int) -> [Float] {
        (0..<(size * size)).map { index in
            let (row, column) = index.quotientAndRemainder(dividingBy: size)
            let u = (Float(column) + 0.5) / Float(size) * 2 - 1, v = (Float(row) + 0.5) / Float(size) * 2 - 1
            let r = (u * u + v * v).squareRoot(), box = Swift.max(abs(u), abs(v))
            let inside: Bool
            switch name {
            case "disc": inside = r < 0.55
            case "ring": inside = r > 0.45 && r < 0.75
            case "square": inside = box > 0.4 && box < 0.65
            default: inside = (abs(u) < 0.18 && abs(v) < 0.7) || (abs(v) < 0.18 && abs(u) < 0.7)
            }
            return inside ? 1 : 0
        }
    }

    /// One 3 × 3 panel per run (inputs at the corners, centroids between), runs laid out with one
    /// row per backward and one column per τ; each histogram scaled to its own maximum.
    func writeImage(_ report: BarycenterReport, to path: String) throws {
        let side = report.size * zoom, gap = 2, panelGap = 8
        let panel = 3 * side + 2 * gap
        let backwardNames = report.runs.reduce(into: [String]()) { if !$0.contains($1.backward) { $0.append($1.backward) } }
        let taus = report.runs.reduce(into: [Int]()) { if !$0.contains($1.iterations) { $0.append($1.iterations) } }
        let width = taus.count * panel + (taus.count - 1) * panelGap
        let height = backwardNames.count * panel + (backwardNames.count - 1) * panelGap
        var picture = Image(width: Swift.max(width, 1), height: Swift.max(height, 1), channels: 1, repeating: 48)
        func draw(_ histogram: [Float], x: Int, y: Int) {
            picture.paint(histogram, side: report.size, zoom: zoom, x: x, y: y)
        }
        let cell = side + gap
        for run in report.runs {
            let px = taus.firstIndex(of: run.iterations)! * (panel + panelGap)
            let py = backwardNames.firstIndex(of: run.backward)! * (panel + panelGap)
            for (corner, (cx, cy)) in [(0, 0), (2, 0), (0, 2), (2, 2)].enumerated() {
                draw(report.images[corner], x: px + cx * cell, y: py + cy * cell)
            }
            for centroid in run.centroids {
                draw(centroid.histogram, x: px + Int(centroid.s * 2) * cell, y: py + Int(centroid.t * 2) * cell)
            }
        }
        let bytes = try PNG.encode(picture)
        try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}

extension Image {
    /// Paints a `side × side` gray map at `(x, y)` of this one-channel image, each value as one
    /// `zoom × zoom` block, scaled so that the largest value is white (all black when none is
    /// positive).
    mutating func paint<Values: Collection<Float>>(_ values: Values, side: Int, zoom: Int = 1, x: Int, y: Int)
        where Values.Index == Int {
        let top = values.max() ?? 0
        let start = values.startIndex
        for row in 0..<(side * zoom) {
            for column in 0..<(side * zoom) {
                let value = top > 0 ? values[start + (row / zoom) * side + column / zoom] / top : 0
                pixels[(y + row) * width + x + column] = UInt8((Swift.max(0, Swift.min(1, value)) * 255).rounded())
            }
        }
    }
}

/// The JSON written by `jigsaw-train barycenter`.
struct BarycenterReport: Codable {
    struct Centroid: Codable {
        var s: Float
        var t: Float
        var weights: [Float]
        var histogram: [Float]
        var energies: [Float]
        var seconds: Double
        var secondsPerStep: Double
        var peakBackwardBytes: Int
        var evaluations: Int
    }
    struct Run: Codable {
        var backward: String
        var iterations: Int
        var centroids: [Centroid]
    }
    var size: Int
    var entropy: Float
    var steps: Int
    var stepSize: Float
    var backtracking: Bool
    var floor: Float
    var inputs: String
    var command: String
    var images: [[Float]]
    var runs: [Run]
    var gradientAccuracy: [GradientAccuracyHistogram]?
    /// `dense` or `cg` (reports written before the choice existed have none: dense).
    var implicitSolver: String?
    /// `dense` or `separable` (reports written before the choice existed have none: dense).
    var kernel: String?

    /// What makes the report impossible to draw, or nil.
    var problem: String? {
        guard (2...256).contains(size) else { return "size \(size) is not in 2...256" }
        guard images.count == 4 else { return "\(images.count) input images, not 4" }
        let bins = size * size
        if images.contains(where: { $0.count != bins }) { return "an input image does not have \(bins) bins" }
        for run in runs {
            for centroid in run.centroids {
                guard centroid.histogram.count == bins else { return "a centroid does not have \(bins) bins" }
                guard [0, 0.5, 1].contains(centroid.s), [0, 0.5, 1].contains(centroid.t) else {
                    return "a centroid at (\(centroid.s), \(centroid.t)) is not on the 3 × 3 layout"
                }
            }
        }
        return nil
    }
}

/// Relative errors of one backward at one `τ`, as a histogram of `log10(error)` in bins of
/// 0.25 from −9 (errors below 10⁻⁹, exact zeros included, fall in the first bin).
struct GradientAccuracyHistogram: Codable {
    var backward: String
    var iterations: Int
    var referenceIterations: Int
    var referenceMarginalError: Float
    var entries: Int
    var median: Double
    var percentile90: Double
    var maximum: Double
    var log10BinStart: Double
    var log10BinWidth: Double
    var counts: [Int]

    init(backward: String, iterations: Int, referenceIterations: Int, referenceMarginalError: Float, errors: [Float]) {
        self.backward = backward
        self.iterations = iterations
        self.referenceIterations = referenceIterations
        self.referenceMarginalError = referenceMarginalError
        let sorted = errors.map(Double.init).sorted()
        entries = sorted.count
        median = sorted.isEmpty ? 0 : sorted[sorted.count / 2]
        percentile90 = sorted.isEmpty ? 0 : sorted[Swift.min(sorted.count - 1, sorted.count * 9 / 10)]
        maximum = sorted.last ?? 0
        log10BinStart = -9
        log10BinWidth = 0.25
        counts = [Int](repeating: 0, count: 40)
        for error in sorted {
            let position = error > 0 ? (log10(error) - log10BinStart) / log10BinWidth : 0
            counts[Swift.max(0, Swift.min(counts.count - 1, Int(position.rounded(.down))))] += 1
        }
    }
}

/// The transport problems of a barycenter run: the dense `n × n` cost, or the separable kernel.
struct BarycenterTransport {
    let entropy: Float
    let cost: Tensor?
    let grid: SeparableGridTransport?

    /// The solve of the converged reference gradients: the dense one with the dense cost, conjugate
    /// gradients to a relative residual of 1e-7 with the separable kernel.
    var referenceSolver: ImplicitSolver {
        grid == nil ? .dense : .conjugateGradient(tolerance: 1e-7, maximumIterations: 20_000)
    }

    func energy(of barycenter: [Float], inputs: [[Float]], weights: [Float], iterations: Int,
                backward: TransportBackward, solver: ImplicitSolver) throws -> BarycenterEnergy {
        if let grid {
            return try WassersteinBarycenter.energy(of: barycenter, inputs: inputs, weights: weights, grid: grid,
                                                    iterations: iterations, backward: backward, solver: solver)
        }
        return try WassersteinBarycenter.energy(of: barycenter, inputs: inputs, weights: weights, cost: cost!,
                                                entropy: entropy, iterations: iterations, backward: backward,
                                                solver: solver)
    }

    func compute(inputs: [[Float]], weights: [Float], iterations: Int, backward: TransportBackward,
                 solver: ImplicitSolver, steps: Int, stepSize: Float, backtracking: Bool, start: [Float]?,
                 progress: ((Int, Float) -> Void)?) throws -> BarycenterResult {
        if let grid {
            return try WassersteinBarycenter.compute(inputs: inputs, weights: weights, grid: grid, iterations: iterations,
                                                     backward: backward, solver: solver, steps: steps,
                                                     stepSize: stepSize, backtracking: backtracking, start: start,
                                                     progress: progress)
        }
        return try WassersteinBarycenter.compute(inputs: inputs, weights: weights, cost: cost!, entropy: entropy,
                                                 iterations: iterations, backward: backward, solver: solver,
                                                 steps: steps, stepSize: stepSize, backtracking: backtracking,
                                                 start: start, progress: progress)
    }
}
