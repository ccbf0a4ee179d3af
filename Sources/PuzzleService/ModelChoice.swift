import Jigsaw
import NeuralNet

/// How a jigsaw model was chosen for a request, and what the client should know about the choice.
struct ModelChoice {
    var model: ServiceModel
    var configuration: JigsawNetworkConfiguration
    /// The grid found in the scrambled image when the request named neither a model nor a grid.
    var detection: GridDetector.Detection?
    /// Plain-language notes: the input is unlike the model's training data, the grid was guessed.
    var warnings: [String] = []
}

extension ModelRegistry {
    /// The jigsaw models (with their configurations).
    var jigsawModels: [(ServiceModel, JigsawNetworkConfiguration)] {
        models.compactMap { model in model.jigsawConfiguration.map { (model, $0) } }
    }

    /// The model for a request: by name; else among the models of `grid` (or of the grid a square
    /// piece count implies), the one whose channels suit the input (colour → colour models);
    /// else, for a colour image when colour models are served, the colour model of the grid that
    /// ``GridDetector`` finds in it; else the default model. Names a mismatch between the input and
    /// the model's training data in ``ModelChoice/warnings``.
    ///
    /// - Throws: `model_not_found`, `wrong_model_kind`, `no_model`, or `unprocessable_input` when no
    ///   model has the grid asked for.
    func chooseJigsawModel(named name: String?, grid: Int?, pieceCount: Int? = nil, image: Image?,
                           colourful: Bool) throws(ServiceError) -> ModelChoice {
        if let name {
            let (model, configuration) = try jigsawModel(named: name)
            if let grid, grid != configuration.grid {
                throw .unprocessableInput("model '\(model.name)' solves \(configuration.grid)×\(configuration.grid) puzzles, not \(grid)×\(grid)")
            }
            return ModelChoice(model: model, configuration: configuration, warnings: warnings(model, configuration, colourful: colourful))
        }
        let all = jigsawModels
        guard !all.isEmpty else { throw .noModel(kind: "jigsaw") }
        var wanted = grid
        if wanted == nil, let pieceCount {
            let side = Int(Double(pieceCount).squareRoot().rounded())
            if side * side == pieceCount { wanted = side }
        }
        var detection: GridDetector.Detection?
        let colourModels = all.filter { $0.1.channels == 3 }
        if wanted == nil, colourful, !colourModels.isEmpty, let image, image.width >= 4, image.height >= 4 {
            let grids = Array(Set(colourModels.map(\.1.grid).filter { $0 >= 2 })).sorted()
            if !grids.isEmpty {
                let found = GridDetector(candidates: grids).detect(image)
                detection = found
                wanted = found.grid
            }
        }
        var choice: ModelChoice
        if let wanted {
            let candidates = all.filter { $0.1.grid == wanted }
            guard !candidates.isEmpty else {
                let grids = Array(Set(all.map(\.1.grid))).sorted().map { "\($0)×\($0)" }.joined(separator: ", ")
                throw .unprocessableInput("no model solves \(wanted)×\(wanted) puzzles; served grids: \(grids)")
            }
            let preferred = colourful ? 3 : 1
            let best = candidates.min { a, b in
                let ka = (a.1.channels == preferred ? 0 : 1, a.0.name == defaultJigsawModel?.name ? 0 : 1, a.0.name)
                let kb = (b.1.channels == preferred ? 0 : 1, b.0.name == defaultJigsawModel?.name ? 0 : 1, b.0.name)
                return ka < kb
            }!
            choice = ModelChoice(model: best.0, configuration: best.1, detection: detection)
        } else {
            let (model, configuration) = try jigsawModel(named: nil)
            choice = ModelChoice(model: model, configuration: configuration)
        }
        choice.warnings = warnings(choice.model, choice.configuration, colourful: colourful)
        if let detection, detection.confidence < 1 - 1 / GridDetector().threshold {
            choice.warnings.append(String(
                format: "the grid was guessed as %d×%d with low confidence (%.2f); name it with ?grid=N if it is wrong",
                detection.grid, detection.grid, detection.confidence))
        }
        return choice
    }

    /// Notes on an input unlike what the model was trained on.
    private func warnings(_ model: ServiceModel, _ configuration: JigsawNetworkConfiguration, colourful: Bool) -> [String] {
        guard colourful && configuration.channels == 1 else { return [] }
        let dataset = model.metadata["train.dataset"] ?? "gray"
        var text = "model '\(model.name)' was trained on \(configuration.imageSize)×\(configuration.imageSize) gray \(dataset) images; "
            + "a colour photo is unlike anything it has seen, so expect a poor solution"
        let photo = jigsawModels.filter { $0.1.channels == 3 && $0.1.grid == configuration.grid }.map(\.0.name).first
        if let photo { text += " (model '\(photo)' is trained on photos)" }
        return [text]
    }
}
