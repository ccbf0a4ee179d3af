import TensorKit
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

/// One value of a benchmark's JSON line.
private enum BenchValue: Encodable {
    case text(String)
    case integer(Int)
    case number(Double?)

    init(_ value: Any) {
        switch value {
        case let s as String: self = .text(s)
        case let i as Int: self = .integer(i)
        case let d as Double: self = .number(Self.significant(d))
        case let f as Float: self = .number(Self.significant(Double(f)))
        default: self = .text("\(value)")
        }
    }

    /// Six significant digits, so tiny values (a parity difference of 1e-7) survive.
    static func significant(_ value: Double) -> Double? {
        value.isFinite ? Double(String(format: "%.6g", value)) : nil
    }

    func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .text(let s): try container.encode(s)
        case .integer(let i): try container.encode(i)
        case .number(let d): try container.encode(d)
        }
    }
}

/// The fields of one benchmark's JSON line.
private struct BenchLine: Encodable {
    var fields: [(key: String, value: BenchValue)]

    func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: NamedCodingKey.self)
        for (key, value) in fields { try container.encode(value, forKey: NamedCodingKey(stringValue: key)) }
    }
}

/// Prints one JSON object on one line (keys sorted); figures to four decimals, `null` when not finite.
func emit(_ fields: KeyValuePairs<String, Any>) {
    emit(pairs: fields.map { ($0.key, $0.value) })
}

/// ``emit(_:)`` for fields gathered at run time.
func emit(pairs fields: [(key: String, value: Any)]) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    let line = BenchLine(fields: fields.map { ($0.key, BenchValue($0.value)) })
    let data = (try? encoder.encode(line)) ?? Data("{}".utf8)
    print(String(decoding: data, as: UTF8.self))
    fflush(nil)
}
