import Foundation
import TensorKit
import Testing

/// The `jigsaw-train` executable, run as a user would (it is built beside the test bundle).
@Suite struct TrainCommandTests {
    static let executable: String? = locate("jigsaw-train")

    /// The product `name` built beside the test bundle.
    static func locate(_ name: String) -> String? {
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent(name).path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory.deleteLastPathComponent()
        }
        return nil
    }

    func run(_ arguments: [String], executable name: String = "jigsaw-train") throws -> (status: Int32, output: String, error: String) {
        guard let executable = name == "jigsaw-train" ? Self.executable : Self.locate(name) else {
            Issue.record("\(name) was not built beside the tests (run `swift build --build-tests`)")
            return (-1, "", "")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let output = out.fileHandleForReading.readDataToEndOfFile()
        let error = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self), String(decoding: error, as: UTF8.self))
    }

    var repository: URL { URL(fileURLWithPath: fixturesDirectory).deletingLastPathComponent().deletingLastPathComponent() }

    @Test func evaluatePrintsTheFixedJSONKeys() throws {
        let result = try run(["evaluate", "--weights", repository.appendingPathComponent("Models/mnist-2x2.safetensors").path,
                              "--data-dir", fixturesDirectory, "--limit", "100", "--seed", "3", "--json"])
        #expect(result.status == 0, "\(result.error)")
        let object = try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any]
        for key in ["kendall_tau", "prop_wrong", "prop_any_wrong", "l1", "l2", "puzzles"] {
            #expect(object?[key] != nil, "missing \(key) in \(result.output)")
        }
        #expect(object?["puzzles"] as? Int == 100)
    }

    @Test(arguments: [
        (["train", "--data-dir", "/nonexistent/folder"], "does not exist"),
        (["train", "--data-dir", "/tmp", "--grid", "1"], "grid"),
        (["train", "--data-dir", "/tmp", "--lr", "-1"], "learning rate"),
        (["train", "--data-dir", "/tmp", "--backward", "sideways"], "backward"),
        (["evaluate", "--weights", "/nonexistent.safetensors", "--data-dir", "/tmp"], "no weights file"),
    ])
    func badFlagsAreRefusedWithAMessage(arguments: [String], word: String) throws {
        let result = try run(arguments)
        #expect(result.status != 0)
        #expect(result.error.contains(word), "stderr: \(result.error)")
    }

    @Test func aCorruptWeightsFileIsAClearError() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("corrupt-\(UUID()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        writeFile(path, [1, 2, 3])
        let result = try run(["evaluate", "--weights", path, "--data-dir", fixturesDirectory])
        #expect(result.status != 0)
        #expect(!result.error.isEmpty && !result.error.contains("Fatal error"), "stderr: \(result.error)")
    }

    @Test(arguments: [
        ["train", "--gird", "2"],
        ["evaluate", "--wieghts", "x.safetensors"],
        ["sort", "train", "--cuont", "10"],
        ["sort", "evaluate", "--list", "10"],
        ["jigsaw-server", "--prot", "8080"],
        ["sinkhorn-bench", "--fliter", "sinkhorn"],
    ])
    func anUnknownFlagIsReportedAsUnknown(arguments: [String]) throws {
        let executable = ["jigsaw-server", "sinkhorn-bench"].contains(arguments[0]) ? arguments[0] : "jigsaw-train"
        let result = try run(executable == "jigsaw-train" ? arguments : Array(arguments.dropFirst()), executable: executable)
        #expect(result.status != 0)
        let flag = try #require(arguments.first { $0.hasPrefix("--") })
        #expect(result.status == 64)
        #expect(result.error.contains("Unknown option '\(flag)'"), "stderr: \(result.error)")
    }

    @Test(arguments: [
        (["train", "--data-dir", "/tmp", "--lr=0"], "learning rate"),
        (["train", "--data-dir", "/tmp", "--learning-rate=0"], "learning rate"),
        (["sort", "train", "-o", "x.safetensors", "--lr=0"], "--learning-rate must be positive"),
        (["sort", "train", "-o", "x.safetensors", "--learning-rate=0"], "--learning-rate must be positive"),
        (["sort", "train", "-o", "x.safetensors", "--tau=0"], "--temperature must be positive"),
        (["sort", "train", "-o", "x.safetensors", "--temperature=0"], "--temperature must be positive"),
        (["evaluate", "--data-dir", "/tmp"], "--weights is required"),
        (["sort", "train"], "--output must name a file"),
    ])
    func oneSpellingPerIdeaWithTheOldOnesAsAliases(arguments: [String], message: String) throws {
        let result = try run(arguments)
        #expect(result.status == 64)
        #expect(result.error.contains(message), "stderr: \(result.error)")
    }

    @Test(arguments: ["jigsaw-train", "jigsaw-server", "sinkhorn-bench"])
    func everyExecutableTellsItsVersion(name: String) throws {
        let result = try run(["--version"], executable: name)
        #expect(result.status == 0, "\(result.error)")
        #expect(result.output == PackageVersion.string + "\n")
    }

    @Test func aPathWithAQuoteStaysValidJSON() throws {
        let directory = try temporaryDirectory("quote\"d")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/so\"rt \\ 80.safetensors"
        try FileManager.default.copyItem(atPath: repository.appendingPathComponent("Models/sort-80.safetensors").path,
                                         toPath: path)
        let result = try run(["sort", "evaluate", "--weights", path, "--lists", "5", "--json"])
        #expect(result.status == 0, "\(result.error)")
        let object = try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any]
        #expect(object?["weights"] as? String == path, "\(result.output)")
        let distributions = object?["distributions"] as? [[String: Any]]
        #expect(distributions?.count == 7)
        for key in ["distribution", "lists", "prop_wrong", "prop_any_wrong", "kendall_tau", "lists_with_ties"] {
            #expect(distributions?.first?[key] != nil, "missing \(key) in \(result.output)")
        }
    }
}
