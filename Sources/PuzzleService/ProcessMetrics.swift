import Foundation
import Glibc

/// Why `/proc` text could not be read as process statistics.
public enum ProcessMetricsError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `/proc/self/stat` has no `(comm)` field or too few fields after it.
    case malformedStat(String)
    /// `/proc/stat` has no `btime` line.
    case missingBootTime

    public var description: String {
        switch self {
        case .malformedStat(let reason): "malformed /proc/self/stat: \(reason)"
        case .missingBootTime: "/proc/stat has no btime line"
        }
    }
}

/// The process figures Prometheus client libraries export under `process_*` (the Prometheus
/// "process metrics" convention), read from Linux's `/proc` (proc(5)).
public struct ProcessMetrics: Sendable, Equatable {
    /// Resident set size in bytes (`rss` pages × page size).
    public var residentMemoryBytes: Int
    /// Virtual memory size in bytes (`vsize`).
    public var virtualMemoryBytes: Int
    /// User plus system CPU time in seconds (`utime + stime` clock ticks).
    public var cpuSeconds: Double
    /// When the process started, in seconds since the Unix epoch (`btime + starttime` ticks).
    public var startTimeSeconds: Double
    /// Open file descriptors (entries of `/proc/self/fd`), if readable.
    public var openFileDescriptors: Int?
    /// The soft limit on open file descriptors (`RLIMIT_NOFILE`), if finite.
    public var maximumFileDescriptors: Int?

    /// Creates the figures from the text of `/proc/self/stat` and `/proc/stat`.
    ///
    /// `/proc/self/stat` is `pid (comm) state ppid …`; `comm` may hold spaces and parentheses,
    /// so fields are counted from the last `)`. After it, field 3 (`state`) is the first, and
    /// proc(5)'s fields 14 `utime`, 15 `stime`, 22 `starttime`, 23 `vsize` and 24 `rss` follow.
    ///
    /// - Throws: `ProcessMetricsError` when the text is not in that form.
    public init(stat: String, systemStat: String, clockTicksPerSecond: Int, pageSize: Int,
                openFileDescriptors: Int?, maximumFileDescriptors: Int?) throws(ProcessMetricsError) {
        guard clockTicksPerSecond > 0, pageSize > 0 else { throw .malformedStat("clock ticks and page size must be positive") }
        guard let close = stat.lastIndex(of: ")") else { throw .malformedStat("no (comm) field") }
        let fields = stat[stat.index(after: close)...].split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard fields.count >= 22 else { throw .malformedStat("\(fields.count) fields after comm, expected at least 22") }
        func number(_ field: Int) throws(ProcessMetricsError) -> UInt64 {
            guard let value = UInt64(fields[field - 3]) else { throw .malformedStat("field \(field) is not a number") }
            return value
        }
        let ticks = Double(clockTicksPerSecond)
        let userTicks = try number(14), systemTicks = try number(15), startTicks = try number(22)
        let virtualBytes = try number(23), residentPages = try number(24)
        guard let bootLine = systemStat.split(separator: "\n").first(where: { $0.hasPrefix("btime ") }),
              let bootTime = UInt64(bootLine.dropFirst(6).trimmingCharacters(in: .whitespaces)) else {
            throw .missingBootTime
        }
        residentMemoryBytes = Int(clamping: residentPages.multipliedReportingOverflow(by: UInt64(pageSize)).partialValue)
        virtualMemoryBytes = Int(clamping: virtualBytes)
        cpuSeconds = Double(userTicks + systemTicks) / ticks
        startTimeSeconds = Double(bootTime) + Double(startTicks) / ticks
        self.openFileDescriptors = openFileDescriptors
        self.maximumFileDescriptors = maximumFileDescriptors
    }

    /// The figures of this process now, or `nil` where `/proc` cannot be read (not Linux).
    public static func current() -> ProcessMetrics? {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
              let systemStat = try? String(contentsOfFile: "/proc/stat", encoding: .utf8) else { return nil }
        let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd"))?.count
        var limit = rlimit()
        var maximum: Int?
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max {
            maximum = Int(clamping: limit.rlim_cur)
        }
        return try? ProcessMetrics(stat: stat, systemStat: systemStat, clockTicksPerSecond: sysconf(Int32(_SC_CLK_TCK)),
                                   pageSize: sysconf(Int32(_SC_PAGESIZE)), openFileDescriptors: descriptors,
                                   maximumFileDescriptors: maximum)
    }

    /// The figures in Prometheus text exposition format (version 0.0.4), with the standard
    /// names and no prefix.
    public var prometheusText: String {
        var lines: [String] = []
        func family(_ name: String, _ type: String, _ help: String, _ value: String?) {
            guard let value else { return }
            lines.append("# HELP \(name) \(help)")
            lines.append("# TYPE \(name) \(type)")
            lines.append("\(name) \(value)")
        }
        family("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", String(cpuSeconds))
        family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", String(residentMemoryBytes))
        family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", String(virtualMemoryBytes))
        family("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.", String(startTimeSeconds))
        family("process_open_fds", "gauge", "Number of open file descriptors.", openFileDescriptors.map(String.init))
        family("process_max_fds", "gauge", "Maximum number of open file descriptors.", maximumFileDescriptors.map(String.init))
        return lines.joined(separator: "\n") + "\n"
    }
}
