import Foundation
import NeuralNet
import Permutations
import TensorKit

/// Assembling a digit out of the pieces of another (Mena et al. 2018, §4.3).
///
/// A jigsaw network with one score head per class (``JigsawNetworkConfiguration/scoreHeads``) is
/// trained like a jigsaw network, each image scored by the head of its own label. Head `k` thereby
/// learns where the pieces of a `k` go, and, given the loose pieces of any digit, it arranges them
/// into a `k`: `M(X_k)` with `X_k = g_k(pieces)`. The images are cut as every jigsaw model cuts them
/// (``GridCrop``): a 28 px digit in a 10 × 10 grid gives pieces of 2 px from the centred 20 × 20
/// region, where MNIST puts the digit's bounding box; the 4 px border is left out of the puzzle.
public enum DigitAssembly {
    /// The hard arrangement of every puzzle's pieces by its target's head: `arrangements[b][i]` is
    /// the cell of piece `i` of puzzle `b`.
    ///
    /// - Parameters:
    ///   - pieces: `[B, n, C, p, p]` in `[0, 1]`.
    ///   - targets: the head (target class) of every puzzle.
    /// - Throws: `AssignmentError` for non-finite scores.
    public static func arrange(_ network: JigsawNetwork, pieces: Tensor, targets: [Int]) throws -> [[Int]] {
        try JigsawInference.match(JigsawInference.scores(network, pieces: pieces, heads: targets))
    }

    /// The soft arrangement `S(X_k / τ)` of every puzzle (rows: pieces, columns: cells).
    /// - Throws: `SinkhornError` for a bad τ or iteration count.
    public static func soften(_ network: JigsawNetwork, pieces: Tensor, targets: [Int], temperature: Float,
                              iterations: Int = 100) throws -> Tensor {
        try JigsawInference.soften(JigsawInference.scores(network, pieces: pieces, heads: targets),
                                   temperature: temperature, iterations: iterations).matrix
    }

    /// Images `[B, C, H, W]` of the network's size, black everywhere but the cut region, where
    /// every cell holds the pieces a (hard or soft) arrangement puts there: what the classifier sees.
    ///
    /// - Parameters:
    ///   - pieces: `[B, n, C, p, p]`, in the order the arrangement refers to.
    ///   - matrices: `[B, n, n]`, `P[b, i, j]` the weight of piece `i` in cell `j`.
    public static func framed(_ pieces: Tensor, matrices: Tensor, configuration: JigsawNetworkConfiguration) -> Tensor {
        framed(Puzzle.unscramble(pieces, soft: matrices), configuration: configuration)
    }

    /// ``framed(_:matrices:configuration:)`` for hard arrangements.
    public static func framed(_ pieces: Tensor, arrangements: [[Int]], configuration: JigsawNetworkConfiguration) -> Tensor {
        framed(Puzzle.unscramble(pieces, permutations: arrangements), configuration: configuration)
    }

    /// Pieces in cell order `[B, n, C, p, p]` placed into black images of the network's size.
    public static func framed(_ cells: Tensor, configuration c: JigsawNetworkConfiguration) -> Tensor {
        let (batch, n, channels, p, side) = (cells.shape[0], c.pieceCount, c.channels, c.pieceSize, c.imageSize)
        precondition(cells.shape == [batch, n, channels, p, p], "cells \(cells.shape) do not match the network")
        let crop = GridCrop(width: side, height: side, grid: c.grid)
        var images = Tensor(shape: [batch, channels, side, side])
        cells.withUnsafeBufferPointer { source in
            images.withUnsafeMutableBufferPointer { target in
                for b in 0..<batch {
                    for cell in 0..<n {
                        let (x, y) = crop.origin(ofCell: cell)
                        for channel in 0..<channels {
                            let from = ((b * n + cell) * channels + channel) * p * p
                            let to = (b * channels + channel) * side * side
                            for row in 0..<p {
                                for column in 0..<p {
                                    target[to + (y + row) * side + x + column] = source[from + row * p + column]
                                }
                            }
                        }
                    }
                }
            }
        }
        return images
    }
}

/// A baseline that needs no network: the mean image of every class (its ink per cell over the
/// training digits of that class), and pieces placed by rank, the most inked piece in the most
/// inked cell of the target's mean, the next in the next, and so on (the arrangement that
/// maximises `Σ_i ink(piece_i) · mean_k(cell(i))`, by the rearrangement inequality).
public struct AssemblyTemplates: Sendable, Equatable {
    public let grid: Int
    /// `templates[k][cell]`: the mean pixel value of the cell over the training images of class `k`.
    public let templates: [[Double]]

    /// Templates given cell by cell.
    public init(grid: Int, templates: [[Double]]) {
        precondition(templates.allSatisfy { $0.count == grid * grid }, "a template needs one value per cell")
        self.grid = grid
        self.templates = templates
    }

    /// The mean of every class over `images`, cut in `grid × grid` cells as the puzzles are.
    /// - Precondition: `images` has labels (those outside `0..<classes` are skipped).
    public init(images: ImageDataset, grid: Int, classes: Int) {
        precondition(images.labels?.count == images.count, "templates need labelled images")
        let crop = GridCrop(width: images.width, height: images.height, grid: grid)
        var sums = [[Double]](repeating: [Double](repeating: 0, count: grid * grid), count: classes)
        var counts = [Int](repeating: 0, count: classes)
        let (w, plane) = (images.width, images.height * images.width)
        for index in 0..<images.count {
            let label = images.labels![index]
            guard (0..<classes).contains(label) else { continue }
            counts[label] += 1
            for cell in 0..<(grid * grid) {
                let (x, y) = crop.origin(ofCell: cell)
                var ink = 0
                for channel in 0..<images.channels {
                    let base = (index * images.channels + channel) * plane
                    for row in y..<(y + crop.pieceHeight) {
                        for column in x..<(x + crop.pieceWidth) { ink += Int(images.pixels[base + row * w + column]) }
                    }
                }
                sums[label][cell] += Double(ink)
            }
        }
        self.grid = grid
        templates = (0..<classes).map { k in sums[k].map { $0 / Double(max(counts[k], 1)) / 255 } }
    }

    /// The cells of the pieces `[n, C, p, p]` (any order) placed by rank against class `target`'s
    /// mean: ties between pieces keep their order, ties between cells go to the lower index.
    public func arrange(pieces: UnsafeBufferPointer<Float>, target: Int) -> [Int] {
        let n = grid * grid, length = pieces.count / n
        let ink = (0..<n).map { i in (0..<length).reduce(0.0) { $0 + Double(pieces[i * length + $1]) } }
        let byInk = (0..<n).sorted { ink[$0] != ink[$1] ? ink[$0] > ink[$1] : $0 < $1 }
        let template = templates[target]
        let byMean = (0..<n).sorted { template[$0] != template[$1] ? template[$0] > template[$1] : $0 < $1 }
        var cells = [Int](repeating: 0, count: n)
        for (rank, piece) in byInk.enumerated() { cells[piece] = byMean[rank] }
        return cells
    }
}

/// How often a classifier recognises the target in the assembled digits.
public struct AssemblyEvaluation: Equatable, Sendable, Encodable {
    /// Source digits (each assembled into every target).
    public var sources: Int
    /// Target classes.
    public var classes: Int
    /// The share of all (source, target) pairs whose assembly the classifier calls the target:
    /// the paper's figure (85.1 %). Chance is `1 / classes`.
    public var recognised: Double
    /// The same over the pairs whose target differs from the source's own class.
    public var recognisedOtherClass: Double
    /// The same over the pairs whose target is the source's class (the plain jigsaw).
    public var recognisedOwnClass: Double
    /// `byTarget[k]`: the share over the sources assembled into `k`.
    public var byTarget: [Double]
    /// `bySource[j][k]`: the share over the sources of class `j` assembled into `k`.
    public var bySource: [[Double]]
    /// The classifier's accuracy on the sources themselves, cut as the puzzles are (black border).
    public var classifierOnSources: Double
    /// ``recognised`` for the rank baseline (``AssemblyTemplates``), when it was measured.
    public var templateRecognised: Double?
    /// ``recognisedOtherClass`` for the rank baseline.
    public var templateRecognisedOtherClass: Double?

    enum CodingKeys: String, CodingKey {
        case sources, classes, recognised, recognisedOtherClass = "recognised_other_class"
        case recognisedOwnClass = "recognised_own_class", byTarget = "by_target", bySource = "by_source"
        case classifierOnSources = "classifier_on_sources", templateRecognised = "template_recognised"
        case templateRecognisedOtherClass = "template_recognised_other_class"
    }

    /// The figures as `assembly.*` metadata entries.
    public func metadata(dataset: String, split: String) -> [String: String] {
        var entries = [
            "assembly.dataset": dataset, "assembly.split": split, "assembly.sources": "\(sources)",
            "assembly.recognised": String(format: "%.5f", recognised),
            "assembly.recognised_other_class": String(format: "%.5f", recognisedOtherClass),
            "assembly.recognised_own_class": String(format: "%.5f", recognisedOwnClass),
            "assembly.by_target": byTarget.map { String(format: "%.4f", $0) }.joined(separator: ","),
            "assembly.classifier_on_sources": String(format: "%.5f", classifierOnSources),
        ]
        if let templateRecognised { entries["assembly.template_recognised"] = String(format: "%.5f", templateRecognised) }
        return entries
    }
}

public enum AssemblyEvaluator {
    /// Scrambles each of the first `limit` images (all when nil) with a permutation drawn from
    /// `seed`, assembles it into every class with the network's heads and the hard matching, and
    /// counts how often `classifier` calls the assembly its target (Mena et al. 2018, §4.3).
    ///
    /// - Parameters:
    ///   - templates: when given, the rank baseline is measured on the same puzzles.
    /// - Throws: `JigsawTrainingError.datasetMismatch` when the images or labels do not fit the
    ///   network or the classifier, `AssignmentError` for non-finite scores.
    public static func evaluate(network: JigsawNetwork, classifier: DigitClassifier, dataset: ImageDataset,
                                templates: AssemblyTemplates? = nil, limit: Int? = nil, seed: UInt64 = 0,
                                batchSize: Int = 100,
                                progress: ((Int, Int) -> Void)? = nil) throws -> AssemblyEvaluation {
        let c = network.configuration
        let classes = c.scoreHeads
        guard classes > 1 else {
            throw JigsawTrainingError.datasetMismatch("the network has one score head: it assembles nothing but its own puzzles")
        }
        try dataset.checkFits(c)
        guard c.channels == 1, classifier.configuration.side == c.imageSize, classifier.configuration.classes == classes else {
            throw JigsawTrainingError.datasetMismatch(
                "the classifier takes \(classifier.configuration.side) px images into \(classifier.configuration.classes) classes; "
                + "the network assembles 1-channel \(c.imageSize) px images into \(classes)")
        }
        try dataset.checkLabels(classes: classes)
        let labels = dataset.labels!
        let total = min(limit ?? dataset.count, dataset.count)
        let wasTraining = network.isTraining
        network.isTraining = false
        defer { network.isTraining = wasTraining }
        var generator = SeededGenerator(seed: seed)
        var batch = PuzzleBatch(batchSize: min(batchSize, max(total, 1)), grid: c.grid, channels: c.channels,
                                height: c.imageSize, width: c.imageSize)
        var hits = [[Int]](repeating: [Int](repeating: 0, count: classes), count: classes)
        var sourcesOfClass = [Int](repeating: 0, count: classes)
        var templateHits = [[Int]](repeating: [Int](repeating: 0, count: classes), count: classes)
        var sourcesRecognised = 0
        let pieceLength = c.channels * c.pieceSize * c.pieceSize
        var start = 0
        while start < total {
            let end = min(start + batchSize, total)
            batch.fill(from: dataset, indices: start..<end, generator: &generator, normalization: nil)
            let sourceLabels = Array(labels[start..<end])
            for label in sourceLabels { sourcesOfClass[label] += 1 }
            let own = classifier.predict(DigitAssembly.framed(batch.unscrambled, configuration: c))
            sourcesRecognised += zip(own, sourceLabels).filter { $0 == $1 }.count
            for target in 0..<classes {
                let arrangements = try DigitAssembly.arrange(network, pieces: batch.scrambled,
                                                             targets: [Int](repeating: target, count: batch.count))
                let verdicts = classifier.predict(DigitAssembly.framed(batch.scrambled, arrangements: arrangements, configuration: c))
                for (b, verdict) in verdicts.enumerated() where verdict == target { hits[sourceLabels[b]][target] += 1 }
                if let templates {
                    let ranked = batch.scrambled.withUnsafeBufferPointer { x in
                        (0..<batch.count).map { b in
                            templates.arrange(pieces: UnsafeBufferPointer(rebasing: x[(b * c.pieceCount * pieceLength)..<((b + 1) * c.pieceCount * pieceLength)]),
                                              target: target)
                        }
                    }
                    let baseline = classifier.predict(DigitAssembly.framed(batch.scrambled, arrangements: ranked, configuration: c))
                    for (b, verdict) in baseline.enumerated() where verdict == target { templateHits[sourceLabels[b]][target] += 1 }
                }
            }
            start = end
            progress?(start, total)
        }
        /// The share recognised over all pairs (`own` nil), the own-class pairs or the others.
        func share(_ table: [[Int]], own: Bool?) -> Double {
            var right = 0, pairs = 0
            for source in 0..<classes {
                for target in 0..<classes where own.map({ (source == target) == $0 }) ?? true {
                    right += table[source][target]
                    pairs += sourcesOfClass[source]
                }
            }
            return pairs > 0 ? Double(right) / Double(pairs) : 0
        }
        let byTarget = (0..<classes).map { target in
            Double((0..<classes).reduce(0) { $0 + hits[$1][target] }) / Double(max(total, 1))
        }
        let bySource = (0..<classes).map { source in
            (0..<classes).map { Double(hits[source][$0]) / Double(max(sourcesOfClass[source], 1)) }
        }
        return AssemblyEvaluation(
            sources: total, classes: classes, recognised: share(hits, own: nil),
            recognisedOtherClass: share(hits, own: false), recognisedOwnClass: share(hits, own: true),
            byTarget: byTarget, bySource: bySource, classifierOnSources: Double(sourcesRecognised) / Double(max(total, 1)),
            templateRecognised: templates.map { _ in share(templateHits, own: nil) },
            templateRecognisedOtherClass: templates.map { _ in share(templateHits, own: false) })
    }
}
