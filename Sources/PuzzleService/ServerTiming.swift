import Foundation
import Dispatch
import HTTPCore

/// Wall time of the phases of one request, sent back as a `Server-Timing` header (W3C Server
/// Timing: `name;dur=milliseconds`), so a client sees where its request's time went.
final class ServerTiming {
    private(set) var phases: [(name: String, milliseconds: Double)] = []

    /// Runs `body` and adds its wall time to phase `name` (phases keep their first-seen order).
    func measure<T, E: Error>(_ name: String, _ body: () throws(E) -> T) throws(E) -> T {
        let start = DispatchTime.now().uptimeNanoseconds
        defer { record(name, .nanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - start))) }
        return try body()
    }

    /// Adds `duration` to phase `name`.
    func record(_ name: String, _ duration: Duration) {
        let milliseconds = Double(duration.components.seconds) * 1e3 + Double(duration.components.attoseconds) * 1e-15
        if let index = phases.firstIndex(where: { $0.name == name }) {
            phases[index].milliseconds += milliseconds
        } else {
            phases.append((name, milliseconds))
        }
    }

    /// `decode;dur=12.3, network;dur=4.56, …`.
    var header: String {
        phases.map { "\($0.name);dur=\(ServerTimingValue.milliseconds($0.milliseconds))" }.joined(separator: ", ")
    }
}
