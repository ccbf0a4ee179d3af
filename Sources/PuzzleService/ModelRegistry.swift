import Sorting
import Foundation
import NeuralNet
import TensorKit

/// The models a service serves, by name, with a default jigsaw model.
///
/// Loading is all or nothing: one corrupt or inconsistent file stops the load with an error that
/// names it, so a server never starts with a model silently missing.
public struct ModelRegistry: Sendable {
    /// Every model, sorted by name.
    public let models: [ServiceModel]
    /// The jigsaw model used when a request names none: the one given, else the jigsaw model
    /// with the smallest grid (then the smallest image, then the first name).
    public let defaultJigsawModel: ServiceModel?

    /// A registry of already built models.
    ///
    /// - Parameters:
    ///   - models: the models; names must be distinct.
    ///   - defaultModel: the name of the default jigsaw model, or `nil` to choose the smallest grid.
    /// - Throws: ``ModelLoadError/duplicateName(_:paths:)``, ``ModelLoadError/unknownDefaultModel(_:)``.
    public init(models: [ServiceModel], defaultModel: String? = nil) throws(ModelLoadError) {
        var byName: [String: ServiceModel] = [:]
        for model in models {
            if let existing = byName[model.name] {
                throw .duplicateName(model.name, paths: [existing.source, model.source])
            }
            byName[model.name] = model
        }
        self.models = models.sorted { $0.name < $1.name }
        if let defaultModel {
            guard let model = byName[defaultModel], model.jigsawConfiguration != nil else {
                throw .unknownDefaultModel(defaultModel)
            }
            defaultJigsawModel = model
        } else {
            defaultJigsawModel = self.models.filter { $0.jigsawConfiguration != nil }.min { a, b in
                let (x, y) = (a.jigsawConfiguration ?? .init(), b.jigsawConfiguration ?? .init())
                return (x.grid, x.imageSize, a.name) < (y.grid, y.imageSize, b.name)
            }
        }
    }

    /// Loads every `*.safetensors` file of `directory` (not its subdirectories) and the given files.
    ///
    /// - Parameters:
    ///   - directory: a models directory, or `nil`.
    ///   - files: more weights files.
    ///   - defaultModel: see ``init(models:defaultModel:)``.
    ///   - instances: network instances per model.
    ///   - batching: how each model gathers concurrent requests into forward passes.
    ///   - log: receives one line for each file whose tensor data has no checksum to verify
    ///     (standard error by default).
    /// - Throws: the first ``ModelLoadError`` met, in file-name order: a damaged file (checksum
    ///   mismatch, non-finite weight) is refused with its path and the reason.
    public init(directory: String?, files: [String] = [], defaultModel: String? = nil, instances: Int = 2,
                batching: BatchPolicy = BatchPolicy(),
                log: (String) -> Void = ModelRegistry.standardError) throws(ModelLoadError) {
        var paths: [String] = []
        if let directory {
            let names: [String]
            do {
                names = try FileManager.default.contentsOfDirectory(atPath: directory)
            } catch {
                throw .unreadableDirectory(path: directory, reason: (error as NSError).localizedDescription)
            }
            paths += names.filter { $0.hasSuffix(".safetensors") }.sorted().map { (directory as NSString).appendingPathComponent($0) }
        }
        paths += files
        var models: [ServiceModel] = []
        for path in paths {
            let model = try ServiceModel(contentsOfFile: path, instances: instances, batching: batching)
            if !model.isChecksumVerified {
                log("model \(model.name) (\(path)): no \(Safetensors.checksumKey) in its metadata; its tensor data is not verified, only checked finite")
            }
            models.append(model)
        }
        try self.init(models: models, defaultModel: defaultModel)
    }

    /// Writes a line to standard error.
    public static func standardError(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// The model with this name.
    public func model(named name: String) -> ServiceModel? {
        models.first { $0.name == name }
    }

    /// The jigsaw model a request asks for: by name, or the default.
    ///
    /// - Throws: `model_not_found`, `wrong_model_kind` or `no_model` as a ``ServiceError``.
    func jigsawModel(named name: String?) throws(ServiceError) -> (ServiceModel, JigsawNetworkConfiguration) {
        guard let name else {
            guard let model = defaultJigsawModel, let configuration = model.jigsawConfiguration else { throw .noModel(kind: "jigsaw") }
            return (model, configuration)
        }
        guard let model = model(named: name) else { throw .modelNotFound(name: name, available: models.map(\.name)) }
        guard let configuration = model.jigsawConfiguration else { throw .wrongModelKind(name: name, expected: "jigsaw") }
        return (model, configuration)
    }

    /// The sorting model a request asks for: by name, or the one with the smallest count that
    /// holds `length` numbers.
    ///
    /// - Throws: `model_not_found`, `wrong_model_kind`, `no_model` or `unprocessable_input`.
    func sortingModel(named name: String?, length: Int) throws(ServiceError) -> (ServiceModel, SortingNetworkConfiguration) {
        if let name {
            guard let model = model(named: name) else { throw .modelNotFound(name: name, available: models.map(\.name)) }
            guard let configuration = model.sortingConfiguration else { throw .wrongModelKind(name: name, expected: "sorting") }
            return (model, configuration)
        }
        let sorting = models.compactMap { model in model.sortingConfiguration.map { (model, $0) } }
        guard !sorting.isEmpty else { throw .noModel(kind: "sorting") }
        guard let best = sorting.filter({ $0.1.count >= length }).min(by: { ($0.1.count, $0.0.name) < ($1.1.count, $1.0.name) }) else {
            let largest = sorting.map(\.1.count).max() ?? 0
            throw .unprocessableInput("\(length) numbers exceed the largest sorting model (\(largest) numbers)")
        }
        return best
    }
}
