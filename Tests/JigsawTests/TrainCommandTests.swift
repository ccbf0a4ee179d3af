import Foundation
import Testing

/// The `jigsaw-train` executable, run as a user would (it is built beside the test bundle).
@Suite struct TrainCommandTests {
    static let executable: String? = {
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("jigsaw-train").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory.deleteLastPathComponent()
        }
        return nil
    }()

    func run(_ arguments: [String]) throws -> (status: Int32, output: String, error: String) {
        guard let executable = Self.executable else {
            Issue.record("jigsaw-train was not built beside the tests (run `swift build --build-tests`)")
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
}
