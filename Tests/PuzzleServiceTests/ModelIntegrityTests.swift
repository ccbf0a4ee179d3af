import Foundation
import Jigsaw
import NeuralNet
import PuzzleService
import TensorKit
import Testing

/// The intensity model of `intensityModel(grid:)` with its score layer multiplied by `scale`: finite
/// weights whose scores are `scale` times too large (and overflow to infinity for a large enough scale).
func brokenIntensityModel(grid: Int, scale: Float, name: String) throws -> ServiceModel {
    var tensors = try healthyTensors(grid: grid)
    if let weight = tensors["g_2.weight"] {
        tensors["g_2.weight"] = Tensor(shape: weight.shape, storage: weight.storage.map { $0 * scale })
    }
    return try ServiceModel(name: name, metadata: try intensityModel(grid: grid).metadata, tensors: tensors)
}

/// The tensors of `intensityModel(grid:)`.
func healthyTensors(grid: Int) throws -> [String: Tensor] {
    let imageSize = grid == 2 ? 28 : 27
    let side = imageSize / grid / 2, n = grid * grid
    var output = [Float](repeating: 0, count: n * side * side)
    for j in 0..<n {
        for k in 0..<(side * side) { output[j * side * side + k] = Float(j + 1) / Float(side * side) }
    }
    return [
        "g_1.0.weight": Tensor(shape: [1, 1, 1, 1], storage: [1]), "g_1.0.bias": Tensor(shape: [1], storage: [0]),
        "g_1.3.weight": Tensor(shape: [1], storage: [1]), "g_1.3.bias": Tensor(shape: [1], storage: [0]),
        "g_1.3.running_mean": Tensor(shape: [1], storage: [0]), "g_1.3.running_var": Tensor(shape: [1], storage: [1]),
        "g_2.weight": Tensor(shape: [n, side * side], storage: output),
    ]
}

@Suite("Model integrity")
struct ServiceModelIntegrityTests {
    static func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "integrity-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static let shipped = Fixtures.repository.appendingPathComponent("Models/mnist-3x3.safetensors").path

    @Test("a weights file with every 499th data byte flipped is refused with its path and both checksums")
    func damagedFile() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Self.shipped)))
        let expected = try #require(SafetensorsFile(bytes: bytes).metadata[Safetensors.checksumKey])
        var length = 0
        for k in 0..<8 { length |= Int(bytes[k]) << (8 * k) }
        for index in stride(from: 8 + length, to: bytes.count, by: 499) { bytes[index] ^= 0xFF }
        let found = SHA256.hex(of: Array(bytes[(8 + length)...]))
        let path = directory + "/mnist-3x3.safetensors"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect(throws: ModelLoadError.invalidFile(
            path: path, reason: "the tensor data is damaged: its SHA-256 is \(found), the metadata's checksum.sha256 is \(expected)")) {
            try ModelRegistry(directory: directory, log: { _ in })
        }
    }

    @Test("a weights file with a NaN weight is refused with its path and the tensor")
    func nanWeight() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var tensors = try healthyTensors(grid: 2)
        tensors["g_1.0.bias"] = Tensor(shape: [1], storage: [.nan])
        let path = directory + "/nan-2x2.safetensors"
        try Safetensors.write(tensors, metadata: try intensityModel(grid: 2).metadata, toFile: path)
        #expect(throws: ModelLoadError.invalidFile(path: path, reason: "tensor 'g_1.0.bias' holds nan at element 0")) {
            try ModelRegistry(directory: directory, log: { _ in })
        }
    }

    @Test("a file without a checksum loads, with one log line and a note in /v1/models")
    func noChecksum() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.copyItem(atPath: Fixtures.torchModel, toPath: directory + "/export.safetensors")
        try FileManager.default.copyItem(atPath: Fixtures.trainedModel, toPath: directory + "/mnist-2x2.safetensors")
        let lines = Locker<[String]>([])
        let registry = try ModelRegistry(directory: directory, log: { line in lines.update { $0.append(line) } })
        #expect(lines.value == ["model export (\(directory)/export.safetensors): no checksum.sha256 in its metadata; its tensor data is not verified, only checked finite"])
        #expect(registry.model(named: "export")?.isChecksumVerified == false)
        #expect(registry.model(named: "mnist-2x2")?.isChecksumVerified == true)
        try withService(models: registry.models) { port, _ in
            let models = try #require(try get("/v1/models", port: port).json["models"] as? [[String: Any]])
            let export = try #require(models.first { $0["name"] as? String == "export" })
            #expect(export["checksum_verified"] as? Bool == false)
            #expect((export["notes"] as? [String])?.contains(ModelFile.noChecksumNote) == true)
            #expect(models.first { $0["name"] as? String == "mnist-2x2" }?["checksum_verified"] as? Bool == true)
        }
    }

    /// 1e7: scores of about 10⁷ (the case once answered 400 "invalid tau '1.0'" to a client that
    /// sent no τ); 3.4e38: scores that overflow to infinity.
    @Test("a model whose scores fail at run time answers 503 and is reported unready",
          arguments: [Float(1e7), .greatestFiniteMagnitude])
    func runTimeFailure(scale: Float) throws {
        let broken = try brokenIntensityModel(grid: 2, scale: scale, name: "broken-2x2")
        let healthy = try intensityModel(grid: 3)
        try withService(models: [broken, healthy], defaultModel: "broken-2x2") { port, _ in
            #expect(try get("/readyz", port: port).status == 200)
            let pieces = (0..<4).map { constantPiece(cellIntensity($0), side: 14) }
            let reason = scale > 1e30
                ? "its network produced non-finite scores (NaN or infinity) from finite input; its weights are broken"
                : nil
            for attempt in 0..<2 {
                let reply = try postJSON("/v1/solve", port: port, ["pieces": pieces])
                #expect(reply.status == 503, "attempt \(attempt): \(reply.text)")
                #expect(reply.errorCode == "model_unavailable")
                let message = (reply.json["error"] as? [String: Any])?["message"] as? String ?? ""
                if let reason {
                    #expect(message == "model 'broken-2x2' is unavailable: \(reason)")
                } else {
                    #expect(message.hasPrefix("model 'broken-2x2' is unavailable: its network produced a score of magnitude "), "\(message)")
                    #expect(message.hasSuffix(" (above 1000000.0) from pieces in [0, 1]; its weights are broken"), "\(message)")
                }
            }
            let failure = try #require(broken.failureReason)
            let ready = try get("/readyz", port: port)
            #expect(ready.status == 503)
            #expect(ready.json["status"] as? String == "not ready: model 'broken-2x2' failed")
            #expect(ready.json["models"] as? [String] == ["intensity-3x3"])
            let failed = ready.json["failed"] as? [[String: String]]
            #expect(failed == [["name": "broken-2x2", "reason": failure]])
            let models = try #require(try get("/v1/models", port: port).json["models"] as? [[String: Any]])
            let entry = try #require(models.first { $0["name"] as? String == "broken-2x2" })
            #expect(entry["ready"] as? Bool == false)
            #expect(entry["failure"] as? String == failure)
            #expect(models.first { $0["name"] as? String == "intensity-3x3" }?["ready"] as? Bool == true)
            let described = try get("/v1/models/broken-2x2", port: port)
            #expect(described.json["ready"] as? Bool == false)
            // The other model still serves.
            let other = try postJSON("/v1/solve?model=intensity-3x3", port: port,
                                     ["pieces": (0..<9).map { constantPiece(cellIntensity($0), side: 9) }])
            #expect(other.status == 200, "\(other.text)")
            #expect(try get("/metrics", port: port).text.contains("\njigsaw_models_ready 1\n"))
        }
    }

    @Test("a sorting model whose scores overflow on ordinary numbers answers 503")
    func sortingRunTimeFailure() throws {
        let count = 5
        let broken = try ServiceModel(name: "sort-5", metadata: ["architecture": "sorting-mlp", "count": String(count), "hidden_units": "1"], tensors: [
            "fc1.weight": Tensor(shape: [1, 1], storage: [1]), "fc1.bias": Tensor(shape: [1], storage: [0]),
            "fc2.weight": Tensor(shape: [count, 1], storage: [Float](repeating: 3e38, count: count)),
            "fc2.bias": Tensor(shape: [count], storage: [Float](repeating: 3e38, count: count)),
        ])
        try withService(models: [try intensityModel(grid: 2), broken]) { port, _ in
            let reply = try postJSON("/v1/sort", port: port, ["numbers": [0.5, 0.25, 2, 1, 0.75]])
            #expect(reply.status == 503, "\(reply.text)")
            #expect(reply.errorCode == "model_unavailable")
            #expect((reply.json["error"] as? [String: Any])?["message"] as? String
                    == "model 'sort-5' is unavailable: its network produced non-finite scores (NaN or infinity) from finite input; its weights are broken")
            #expect(try get("/readyz", port: port).status == 503)
        }
    }

    @Test("model_unavailable is a 503 naming the model")
    func errorMapping() {
        let error = ServiceError.modelUnavailable(name: "m", reason: "r")
        #expect(error.status.code == 503)
        #expect(error.code == "model_unavailable")
        #expect(error.description == "model 'm' is unavailable: r")
    }
}

/// A value behind a lock, for closures called from the code under test.
final class Locker<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value
    init(_ value: Value) { stored = value }
    var value: Value { lock.withLock { stored } }
    func update(_ body: (inout Value) -> Void) { lock.withLock { body(&stored) } }
}
