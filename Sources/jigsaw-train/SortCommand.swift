import ArgumentParser

struct SortCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sort", abstract: "Train and evaluate the sorting network.")
    func run() throws { throw ValidationError("not yet available") }
}
