import Foundation

/// One benchmark: an op name (the fixed `op` key of the JSON line) and a body that measures and prints.
struct Benchmark: Sendable {
    let op: String
    let run: @Sendable () -> Void
}

/// Wall-clock seconds of one call.
func seconds(_ body: () -> Void) -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

/// The median wall time in milliseconds of `body`, after `warmup` untimed calls, over at least
/// `minRuns` runs and until about `budget` seconds have passed.
func medianMilliseconds(warmup: Int = 2, minRuns: Int = 5, maxRuns: Int = 1000, budget: Double = 1.0,
                        _ body: () -> Void) -> Double {
    for _ in 0..<warmup { body() }
    var times: [Double] = []
    var spent = 0.0
    while times.count < minRuns || (spent < budget && times.count < maxRuns) {
        let t = seconds(body)
        times.append(t)
        spent += t
    }
    times.sort()
    let mid = times.count / 2
    let median = times.count % 2 == 1 ? times[mid] : (times[mid - 1] + times[mid]) / 2
    return median * 1000
}

/// Peak resident set size of this process so far, in bytes (Linux `VmHWM`).
func peakResidentBytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kb = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
        return kb * 1024
    }
    return 0
}

/// Prints one JSON object on one line with keys in the given order.
func emit(_ fields: KeyValuePairs<String, Any>) {
    var parts: [String] = []
    for (key, value) in fields {
        let rendered: String
        switch value {
        case let s as String: rendered = "\"\(s)\""
        case let d as Double: rendered = d.isFinite ? String(format: "%.4f", d) : "null"
        case let f as Float: rendered = f.isFinite ? String(format: "%.4f", Double(f)) : "null"
        default: rendered = "\(value)"
        }
        parts.append("\"\(key)\": \(rendered)")
    }
    print("{" + parts.joined(separator: ", ") + "}")
    fflush(nil)
}
