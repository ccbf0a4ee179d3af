import Foundation

/// Progress output for long runs: a redrawn bar on a terminal, plain lines otherwise (logs, CI).
final class ProgressReporter {
    private let isTerminal: Bool
    private let label: String
    private var lastPlainLine = Date.distantPast
    private let plainInterval: TimeInterval

    init(label: String, plainInterval: TimeInterval = 10) {
        self.isTerminal = isatty(STDERR_FILENO) == 1
        self.label = label
        self.plainInterval = plainInterval
    }

    /// Reports `done` of `total` steps with extra fields such as the running loss and throughput.
    func update(done: Int, total: Int, fields: [(String, String)]) {
        let extras = fields.map { "\($0.0) \($0.1)" }.joined(separator: "  ")
        if isTerminal {
            let width = 30
            let filled = total > 0 ? min(width, width * done / total) : 0
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            write("\r\u{1B}[2K\(label) [\(bar)] \(done)/\(total)  \(extras)")
        } else if Date().timeIntervalSince(lastPlainLine) >= plainInterval || done == total {
            lastPlainLine = Date()
            write("\(label) \(done)/\(total)  \(extras)\n")
        }
    }

    /// Ends the bar line (on a terminal) so later output starts on a fresh line.
    func finish() {
        if isTerminal { write("\n") }
    }

    private func write(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }
}
