import ArgumentParser

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train", abstract: "Train the jigsaw network.")
    func run() throws { throw ValidationError("not yet available") }
}
