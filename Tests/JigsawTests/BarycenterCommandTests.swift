import Foundation
import Jigsaw
import Testing

/// `jigsaw-train barycenter` as a user runs it: a small Figure 3 set-up end to end, the JSON and
/// the picture it writes, the picture redrawn from the JSON, and refused flags.
@Suite struct BarycenterCommandTests {
    let runner = TrainCommandTests()

    @Test func smallRunWritesJSONAndPicture() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("barycenter-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let json = folder.appendingPathComponent("b.json").path, image = folder.appendingPathComponent("b.png").path
        let result = try runner.run(["barycenter", "--size", "8", "--iterations", "20,60", "--steps", "15",
                                     "--entropy", "0.005", "--zoom", "1", "--json", json, "--image", image])
        #expect(result.status == 0, "\(result.error)")
        #expect(result.output.contains("implicit τ=20"), "\(result.output)")
        #expect(result.output.contains("unrolled τ=60"), "\(result.output)")
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any]
        let runs = object?["runs"] as? [[String: Any]] ?? []
        #expect(runs.count == 4)
        for run in runs {
            let centroids = run["centroids"] as? [[String: Any]] ?? []
            #expect(centroids.count == 5)
            for centroid in centroids {
                let histogram = centroid["histogram"] as? [Double] ?? []
                #expect(histogram.count == 64)
                #expect(abs(histogram.reduce(0, +) - 1) < 1e-4)
                let energies = centroid["energies"] as? [Double] ?? []
                #expect(energies.count == 16)
                // Backtracking never accepts a step that raises the energy.
                #expect((energies.last ?? 1) <= (energies.first ?? 0))
                let weights = centroid["weights"] as? [Double] ?? []
                #expect(abs(weights.reduce(0, +) - 1) < 1e-6)
            }
        }
        let picture = try PNG.decode(Array(try Data(contentsOf: URL(fileURLWithPath: image))))
        // Two backwards × two τ panels of 3 × 8 px + 2 gaps of 2 px, 8 px between panels.
        #expect(picture.width == 2 * 28 + 8)
        #expect(picture.height == 2 * 28 + 8)

        // A JSON whose histograms do not fit its size is refused, not drawn out of bounds.
        var broken = object ?? [:]
        broken["size"] = 9
        let brokenPath = folder.appendingPathComponent("broken.json").path
        try JSONSerialization.data(withJSONObject: broken).write(to: URL(fileURLWithPath: brokenPath))
        let refused = try runner.run(["barycenter", "--plot", brokenPath, "--image", folder.appendingPathComponent("d.png").path])
        #expect(refused.status == 64)
        #expect(refused.error.contains("bins"), "\(refused.error)")
        let missing = try runner.run(["barycenter", "--plot", folder.appendingPathComponent("none.json").path,
                                      "--image", folder.appendingPathComponent("d.png").path])
        #expect(missing.status == 64)
        #expect(missing.error.contains("cannot read"), "\(missing.error)")

        let redrawn = folder.appendingPathComponent("c.png").path
        let replot = try runner.run(["barycenter", "--plot", json, "--zoom", "1", "--image", redrawn])
        #expect(replot.status == 0, "\(replot.error)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: redrawn)) == Data(contentsOf: URL(fileURLWithPath: image)))
    }

    @Test func gradientFigureFollowsMirrorDescent() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("figure6-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("figure6.png").path
        let result = try runner.run(["barycenter", "--size", "6", "--iterations", "5", "--snapshots", "0,3,6",
                                     "--reference-iterations", "400", "--zoom", "1", "--gradient-figure", path])
        #expect(result.status == 0, "\(result.error)")
        let picture = try PNG.decode([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))))
        // Three snapshots; rows: inputs, snapshots, implicit, unrolled, reference.
        #expect(picture.width == 3 * 6 + 2 * 2 && picture.height == 5 * 6 + 4 * 2)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder.appendingPathComponent("figure6.json").path)))
        let snapshots = (json as? [String: Any])?["snapshots"] as? [[String: Any]] ?? []
        #expect(snapshots.map { $0["step"] as? Int } == [0, 3, 6])
        for snapshot in snapshots {
            let histogram = snapshot["histogram"] as? [Double] ?? []
            #expect(abs(histogram.reduce(0, +) - 1) < 1e-4)
            let gradients = snapshot["gradients"] as? [String: [Double]] ?? [:]
            #expect(Set(gradients.keys) == ["implicit", "unrolled", "reference"])
            // Mirror-descent gradients are centred: Σ b_i g_i = 0.
            for gradient in gradients.values {
                #expect(abs(zip(histogram, gradient).reduce(0) { $0 + $1.0 * $1.1 }) < 1e-4)
            }
        }
        // The descent starts at the uniform histogram and moves.
        let first = snapshots.first?["histogram"] as? [Double] ?? [], last = snapshots.last?["histogram"] as? [Double] ?? []
        #expect(first.allSatisfy { abs($0 - 1.0 / 36) < 1e-6 })
        #expect(zip(first, last).contains { abs($0 - $1) > 1e-3 })

        // The matrix-free implicit backward gives the same figure where its system is well posed
        // (at λ = 0.002 on 6 × 6 the kernel underflows between distant bins and it refuses).
        var figures: [[[String: Any]]] = []
        for solver in ["dense", "cg"] {
            let run = try runner.run(["barycenter", "--size", "6", "--iterations", "5", "--snapshots", "0,3", "--entropy", "0.05",
                                      "--implicit-solver", solver, "--reference-iterations", "400", "--zoom", "1",
                                      "--gradient-figure", folder.appendingPathComponent("\(solver).png").path])
            #expect(run.status == 0, "\(run.error)")
            let json = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("\(solver).json")))
            #expect((json as? [String: Any])?["implicitSolver"] as? String == solver)
            figures.append((json as? [String: Any])?["snapshots"] as? [[String: Any]] ?? [])
        }
        let dense = figures[0].last?["histogram"] as? [Double] ?? [], iterative = figures[1].last?["histogram"] as? [Double] ?? []
        #expect(dense.count == 36 && zip(dense, iterative).allSatisfy { abs($0 - $1) < 1e-5 })
        let refused = try runner.run(["barycenter", "--size", "6", "--iterations", "5", "--snapshots", "0,3", "--implicit-solver", "cg",
                                      "--reference-iterations", "400", "--gradient-figure", folder.appendingPathComponent("r.png").path])
        #expect(refused.status != 0 && refused.error.contains("notConverged"), "\(refused.error)")
    }

    /// `--kernel separable` gives the dense kernel's barycenters (both with conjugate gradients),
    /// records its kernel and solver, and lifts the size limit the dense cost needs.
    @Test func separableKernelGivesTheDenseBarycenters() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("barycenter-kernel-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        var centroids: [[[Double]]] = []
        for kernel in ["dense", "separable"] {
            let json = folder.appendingPathComponent("\(kernel).json").path
            var arguments = ["barycenter", "--size", "8", "--iterations", "30", "--steps", "8", "--entropy", "0.01",
                             "--no-backtracking", "--kernel", kernel, "--json", json]
            if kernel == "dense" { arguments += ["--implicit-solver", "cg"] }
            let result = try runner.run(arguments)
            #expect(result.status == 0, "\(result.error)")
            let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any]
            #expect(object?["kernel"] as? String == kernel)
            #expect(object?["implicitSolver"] as? String == "cg")
            let runs = object?["runs"] as? [[String: Any]] ?? []
            #expect(runs.count == 2)
            centroids.append(runs.flatMap { ($0["centroids"] as? [[String: Any]] ?? []).map { $0["histogram"] as? [Double] ?? [] } })
        }
        #expect(centroids[0].count == 10 && centroids[1].count == 10)
        for (dense, separable) in zip(centroids[0], centroids[1]) {
            #expect(dense.count == 64 && zip(dense, separable).allSatisfy { abs($0 - $1) < 1e-5 })
        }
        let large = try runner.run(["barycenter", "--size", "100", "--json", folder.appendingPathComponent("x.json").path])
        #expect(large.status == 64 && large.error.contains("--kernel separable"), "\(large.error)")
    }

    @Test(arguments: [
        (["barycenter", "--size", "1", "--json", "/tmp/x.json"], "--size"),
        (["barycenter", "--iterations", "0", "--json", "/tmp/x.json"], "--iterations"),
        (["barycenter", "--backwards", "sideways", "--json", "/tmp/x.json"], "--backwards"),
        (["barycenter", "--inputs", "mnist", "--json", "/tmp/x.json"], "--data-dir"),
        (["barycenter"], "--json"),
        (["barycenter", "--plot", "/nonexistent.json"], "--image"),
        (["barycenter", "--kernel", "fourier", "--json", "/tmp/x.json"], "--kernel"),
        (["barycenter", "--size", "300", "--kernel", "separable", "--json", "/tmp/x.json"], "--size"),
        (["barycenter", "--implicit-solver", "lu", "--json", "/tmp/x.json"], "--implicit-solver"),
    ])
    func badFlagsAreRefused(arguments: [String], word: String) throws {
        let result = try runner.run(arguments)
        #expect(result.status == 64, "\(arguments)")
        #expect(result.error.contains(word), "\(arguments): \(result.error)")
    }
}

/// `jigsaw-train sort gradient-accuracy` on a shipped sorting network: errors shrink as the forward
/// converges, and the JSON has the layout the plotting script reads.
@Suite struct SortGradientAccuracyCommandTests {
    @Test func errorsShrinkWithIterations() throws {
        let runner = TrainCommandTests()
        let json = FileManager.default.temporaryDirectory.appendingPathComponent("sort-accuracy-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: json) }
        let result = try runner.run(["sort", "gradient-accuracy",
                                     "--weights", runner.repository.appendingPathComponent("Models/sort-80.safetensors").path,
                                     "--lists", "2", "--iterations", "5,200", "--reference-iterations", "1000", "--json", json.path])
        #expect(result.status == 0, "\(result.error)")
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: json)) as? [String: Any]
        let entries = object?["gradientAccuracy"] as? [[String: Any]] ?? []
        #expect(entries.count == 4)
        for backward in ["implicit", "unrolled"] {
            let rows = entries.filter { $0["backward"] as? String == backward }
            let few = rows.first { $0["iterations"] as? Int == 5 }?["percentile90"] as? Double ?? 0
            let many = rows.first { $0["iterations"] as? Int == 200 }?["percentile90"] as? Double ?? 1
            #expect(many < few, "\(backward): 90th percentile \(few) at τ = 5, \(many) at τ = 200")
            #expect((rows.first?["entries"] as? Int) == 2 * 80 * 80)
        }
    }
}
