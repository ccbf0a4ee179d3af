import Foundation
import Jigsaw
import NeuralNet
import Testing
import TensorKit

/// A fresh directory under the system's temporary folder.
func integrityDirectory() throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("model-integrity-\(getpid())-\(UUID())").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// `bytes` with every `stride`-th byte of the safetensors data section inverted.
func flippingEvery(_ stride: Int, ofDataIn bytes: [UInt8]) -> [UInt8] {
    var length = 0
    for k in 0..<8 { length |= Int(bytes[k]) << (8 * k) }
    var result = bytes
    for index in Swift.stride(from: 8 + length, to: bytes.count, by: stride) { result[index] ^= 0xFF }
    return result
}

func readBytes(_ path: String) throws -> [UInt8] { try [UInt8](Data(contentsOf: URL(fileURLWithPath: path))) }

@Suite struct ModelIntegrityTests {
    static let repository = URL(fileURLWithPath: fixturesDirectory).deletingLastPathComponent().deletingLastPathComponent()
    static let shipped = repository.appendingPathComponent("Models/mnist-3x3.safetensors").path
    static let torchExport = repository.appendingPathComponent("Tests/Fixtures/torch/tutorial-2x2-random.safetensors").path

    @Test func theShippedModelsCarryAVerifiedChecksum() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.repository.appendingPathComponent("Models").path)
            .filter { $0.hasSuffix(".safetensors") }
        #expect(!names.isEmpty)
        for name in names {
            let file = try ModelFile(contentsOfFile: Self.repository.appendingPathComponent("Models/" + name).path)
            #expect(file.isChecksumVerified, "\(name)")
            #expect(file.notes.isEmpty, "\(name): \(file.notes)")
        }
    }

    @Test func aDamagedWeightsFileIsRefusedWithItsNameAndBothChecksums() throws {
        let directory = try integrityDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let original = try readBytes(Self.shipped)
        let expected = try #require(SafetensorsFile(bytes: original).metadata[Safetensors.checksumKey])
        let damaged = flippingEvery(499, ofDataIn: original)
        let path = directory + "/mnist-3x3.safetensors"
        writeFile(path, damaged)
        var length = 0
        for k in 0..<8 { length |= Int(damaged[k]) << (8 * k) }
        let found = SHA256.hex(of: Array(damaged[(8 + length)...]))
        #expect(throws: JigsawTrainingError.unreadableModelFile(path: path, error: .checksumMismatch(expected: expected, found: found))) {
            try ModelFile(contentsOfFile: path)
        }
        let message = JigsawTrainingError.unreadableModelFile(path: path, error: .checksumMismatch(expected: expected, found: found)).description
        #expect(message.hasPrefix("cannot load model \(path): the tensor data is damaged"))
    }

    /// (the first tensor whose name ends so, element, value, expected text)
    @Test(arguments: [
        ("weight", 7, Float.nan, "nan"),
        ("bias", 0, Float.infinity, "inf"),
        ("running_mean", 3, -Float.infinity, "-inf"),
    ])
    func aNonFiniteWeightIsRefusedWithTheFileAndTheTensor(suffix: String, element: Int, value: Float, text: String) throws {
        let directory = try integrityDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let network = try JigsawNetwork(configuration: JigsawNetworkConfiguration(grid: 2, hiddenChannels: 4), seed: 1)
        var tensors = network.namedTensors()
        let name = try #require(tensors.keys.sorted().first { $0.hasSuffix(suffix) && (tensors[$0]?.count ?? 0) > element },
                                "no tensor ending in \(suffix) in \(tensors.keys.sorted())")
        var storage = try #require(tensors[name]).storage
        storage[element] = value
        tensors[name] = Tensor(shape: try #require(tensors[name]).shape, storage: storage)
        // Written with a valid checksum: the damage happened before the write.
        let path = directory + "/nan.safetensors"
        try Safetensors.write(tensors, metadata: network.configuration.metadata, toFile: path)
        #expect(throws: JigsawTrainingError.nonFiniteWeight(path: path, tensor: name, index: element, value: text)) {
            try ModelFile(contentsOfFile: path)
        }
        #expect(JigsawTrainingError.nonFiniteWeight(path: path, tensor: name, index: element, value: text).description
                == "\(path): tensor '\(name)' holds \(text) at element \(element); the file is damaged")
    }

    @Test func aNegativeRunningVarianceIsRefused() throws {
        let network = try JigsawNetwork(configuration: JigsawNetworkConfiguration(grid: 2, hiddenChannels: 4), seed: 1)
        var tensors = network.namedTensors()
        let name = try #require(tensors.keys.sorted().first { $0.hasSuffix("running_var") })
        var storage = try #require(tensors[name]).storage
        storage[1] = -0.5
        tensors[name] = Tensor(shape: [storage.count], storage: storage)
        #expect(throws: JigsawTrainingError.negativeRunningVariance(path: "memory", tensor: name, index: 1, value: -0.5)) {
            try ModelFile(metadata: network.configuration.metadata, tensors: tensors, source: "memory")
        }
    }

    @Test func aPyTorchExportWithoutChecksumStillLoadsWithANote() throws {
        let file = try ModelFile(contentsOfFile: Self.torchExport)
        #expect(!file.isChecksumVerified)
        #expect(file.notes.contains(ModelFile.noChecksumNote))
        #expect(try JigsawModelFile.load(file).checksumVerified == false)
    }

    @Test func addingAChecksumToAnExportKeepsItsDataAndThenVerifiesIt() throws {
        let directory = try integrityDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/export.safetensors"
        try FileManager.default.copyItem(atPath: Self.torchExport, toPath: path)
        let before = try SafetensorsFile(contentsOfFile: path)
        #expect(try JigsawModelFile.addChecksum(toFile: path))
        #expect(try JigsawModelFile.addChecksum(toFile: path) == false)
        let after = try SafetensorsFile(contentsOfFile: path)
        #expect(after.data == before.data && after.entries == before.entries)
        #expect(after.isChecksumVerified)
        let file = try ModelFile(contentsOfFile: path)
        #expect(file.isInferred && file.isChecksumVerified)
    }

    @Test func recordingMetadataKeepsTheTensorBytesAndRenewsTheChecksum() throws {
        let directory = try integrityDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/model.safetensors"
        try FileManager.default.copyItem(atPath: Self.shipped, toPath: path)
        let before = try SafetensorsFile(contentsOfFile: path)
        try JigsawModelFile.recordMetadata(["eval.note": "x"], inFile: path)
        let after = try SafetensorsFile(contentsOfFile: path)
        #expect(after.data == before.data)
        #expect(after.metadata["eval.note"] == "x" && after.isChecksumVerified)
    }
}

@Suite struct CheckpointIntegrityTests {
    func configuration() -> JigsawTrainingConfiguration {
        JigsawTrainingConfiguration(network: JigsawNetworkConfiguration(grid: 2, hiddenChannels: 4),
                                    learningRate: 3e-3, batchSize: 10, epochs: 3, seed: 5, threads: 1, validationSize: 0)
    }

    func trainer() throws -> JigsawTrainer {
        let digits = try ImageDataset.mnist(directory: fixturesDirectory, split: .test)
        return try JigsawTrainer(configuration: configuration(), training: ImageDataset.slice(digits, 0..<40))
    }

    @Test func aCheckpointWithFlippedBytesIsRefusedAndTheTrainerIsUnchanged() throws {
        let directory = try integrityDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try trainer()
        for _ in 0..<3 { _ = try first.step() }
        let path = directory + "/run.checkpoint"
        try first.saveCheckpoint(to: path)
        let original = try readBytes(path)
        let expected = try #require(SafetensorsFile(bytes: original).metadata[Safetensors.checksumKey])
        let damaged = flippingEvery(997, ofDataIn: original)
        writeFile(path, damaged)
        var length = 0
        for k in 0..<8 { length |= Int(damaged[k]) << (8 * k) }
        let found = SHA256.hex(of: Array(damaged[(8 + length)...]))
        let second = try trainer()
        let weights = second.network.namedTensors()
        #expect(throws: JigsawTrainingError.unreadableCheckpoint(path: path, error: .checksumMismatch(expected: expected, found: found))) {
            try second.resume(from: path)
        }
        #expect(second.globalStep == 0 && second.network.namedTensors() == weights)
    }

    @Test func aCheckpointWithoutChecksumIsCheckedFiniteAndReportedUnverified() throws {
        let directory = try integrityDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try trainer()
        for _ in 0..<3 { _ = try first.step() }
        let path = directory + "/run.checkpoint"
        try first.saveCheckpoint(to: path)
        let file = try SafetensorsFile(contentsOfFile: path)
        var tensors = try ModelFile.floatTensors(of: file, path: path)
        var metadata = file.metadata
        metadata[Safetensors.checksumKey] = nil
        writeFile(path, try Safetensors.encode(tensors, metadata: metadata))
        #expect(try trainer().resume(from: path) == JigsawTrainer.Resumption(checksumVerified: false, earlierSeconds: 0))

        let name = try #require(tensors.keys.sorted().first { $0.hasPrefix("optimizer.") })
        var storage = try #require(tensors[name]).storage
        storage[0] = .nan
        tensors[name] = Tensor(shape: try #require(tensors[name]).shape, storage: storage)
        writeFile(path, try Safetensors.encode(tensors, metadata: metadata))
        let second = try trainer()
        #expect(throws: JigsawTrainingError.nonFiniteWeight(path: path, tensor: name, index: 0, value: "nan")) {
            try second.resume(from: path)
        }
        #expect(second.globalStep == 0)
    }

    @Test func trainingSecondsAddUpOverEveryResumedPart() throws {
        let directory = try integrityDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/run.checkpoint"
        var trainer = try self.trainer()
        _ = try trainer.step()
        try trainer.saveCheckpoint(to: path, elapsedSeconds: 1.5)
        // Eight resumes of 1.5 s each after the first part: 13.5 s in all.
        for part in 1...8 {
            trainer = try self.trainer()
            let resumption = try trainer.resume(from: path)
            #expect(resumption.checksumVerified)
            #expect(abs(resumption.earlierSeconds - 1.5 * Double(part)) < 1e-9, "part \(part)")
            _ = try trainer.step()
            try trainer.saveCheckpoint(to: path, elapsedSeconds: 1.5)
        }
        let last = try self.trainer()
        #expect(try last.resume(from: path).earlierSeconds == 13.5)
        #expect(last.earlierSeconds == 13.5 && last.globalStep == 9)
    }
}
