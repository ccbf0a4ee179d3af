import ArgumentParser
import TensorKit

/// `jigsaw-train`: trains and evaluates the jigsaw and sorting networks offline.
@main
struct JigsawTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jigsaw-train",
        abstract: "Train and evaluate Gumbel-Sinkhorn networks (jigsaw puzzles, number sorting).",
        version: PackageVersion.string,
        subcommands: [TrainCommand.self, EvaluateCommand.self, SortCommand.self, ClassifierCommand.self, AssembleCommand.self, BarycenterCommand.self, KMeansCommand.self,
                      ChecksumCommand.self]
    )
}
