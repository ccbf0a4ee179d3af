import ArgumentParser

struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "evaluate", abstract: "Evaluate jigsaw weights.")
    func run() throws { throw ValidationError("not yet available") }
}
