/// A snapshot of the server's counters, for a `/metrics` endpoint.
public struct HTTPServerMetrics: Sendable, Equatable {
    /// What a request counter is keyed by.
    public struct RequestKey: Sendable, Hashable {
        /// The route pattern, or `nil` for requests no route answered (404, malformed, 408).
        public var route: String?
        /// The method, or `-` when the request could not be parsed.
        public var method: String
        /// The status sent.
        public var status: Int

        public init(route: String?, method: String, status: Int) {
            self.route = route
            self.method = method
            self.status = status
        }
    }

    /// What a latency histogram is keyed by: bounded labels only (route patterns, not paths;
    /// status classes, not codes), so the number of series stays small whatever clients send.
    public struct LatencyKey: Sendable, Hashable {
        /// The route pattern, or `nil` for requests no route answered.
        public var route: String?
        /// The method, or `-` when the request could not be parsed.
        public var method: String
        /// `2xx`, `3xx`, `4xx` or `5xx` (`1xx` never ends a request).
        public var statusClass: String

        public init(route: String?, method: String, statusClass: String) {
            self.route = route
            self.method = method
            self.statusClass = statusClass
        }
    }

    /// One latency histogram.
    public struct Histogram: Sendable, Equatable {
        /// Cumulative counts: `buckets[i]` responses took at most `latencyBucketBounds[i]`
        /// seconds; the last element (one past the bounds) is the total (`+Inf`).
        public var buckets: [Int] = Array(repeating: 0, count: HTTPServerMetrics.latencyBucketBounds.count + 1)
        /// Sum of the latencies in seconds.
        public var sum: Double = 0

        mutating func record(_ seconds: Double) {
            for (position, bound) in HTTPServerMetrics.latencyBucketBounds.enumerated() where seconds <= bound {
                buckets[position] += 1
            }
            buckets[buckets.count - 1] += 1
            sum += seconds
        }
    }

    /// Upper bounds (seconds) of the latency histogram buckets; an implicit `+Inf` follows.
    public static let latencyBucketBounds: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    /// Responses sent, by route, method and status.
    public var requests: [RequestKey: Int] = [:]
    /// Latency histograms by route, method and status class.
    public var latency: [LatencyKey: Histogram] = [:]
    /// Cumulative counts over every response: `latencyBuckets[i]` took at most
    /// `latencyBucketBounds[i]` seconds; the last element (one past the bounds) is the total.
    public var latencyBuckets: [Int] = Array(repeating: 0, count: latencyBucketBounds.count + 1)
    /// Sum of all latencies in seconds.
    public var latencySum: Double = 0
    /// Connections open now.
    public var openConnections = 0
    /// Connections accepted since start (including those refused with 503).
    public var acceptedConnections = 0
    /// Connections refused with 503 because of the connection bound.
    public var rejectedConnections = 0
    /// Requests refused with 503 because their content did not fit in the body memory budget.
    public var rejectedBodies = 0
    /// Connections closed by a header, body, idle or write timeout.
    public var timedOutConnections = 0
    /// Times the server asked the allocator to hand free heap back to the system after a burst of large bodies drained.
    public var heapTrims = 0

    mutating func record(route: String?, method: String, status: Int, seconds: Double) {
        requests[RequestKey(route: route, method: method, status: status), default: 0] += 1
        let statusClass = "\(min(max(status / 100, 1), 5))xx"
        latency[LatencyKey(route: route, method: method, statusClass: statusClass), default: Histogram()].record(seconds)
        var total = Histogram(buckets: latencyBuckets, sum: latencySum)
        total.record(seconds)
        latencyBuckets = total.buckets
        latencySum = total.sum
    }

    /// The route label of a request no route answered.
    public static let unmatchedRouteLabel = "none"

    /// The snapshot in Prometheus text exposition format (version 0.0.4).
    ///
    /// - Parameter prefix: the metric name prefix (`http` gives `http_requests_total`, ...).
    public func prometheusText(prefix: String = "http") -> String {
        func escape(_ value: String) -> String {
            value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
        }
        var lines: [String] = []
        lines.append("# HELP \(prefix)_requests_total Responses sent, by route, method and status.")
        lines.append("# TYPE \(prefix)_requests_total counter")
        let keys = requests.keys.sorted { ($0.route ?? "", $0.method, $0.status) < ($1.route ?? "", $1.method, $1.status) }
        for key in keys {
            lines.append("\(prefix)_requests_total{route=\"\(escape(key.route ?? HTTPServerMetrics.unmatchedRouteLabel))\",method=\"\(escape(key.method))\",status=\"\(key.status)\"} \(requests[key] ?? 0)")
        }
        lines.append("# HELP \(prefix)_request_duration_seconds Time from complete request to queued response, by route, method and status class.")
        lines.append("# TYPE \(prefix)_request_duration_seconds histogram")
        let latencyKeys = latency.keys.sorted {
            ($0.route ?? "", $0.method, $0.statusClass) < ($1.route ?? "", $1.method, $1.statusClass)
        }
        for key in latencyKeys {
            guard let histogram = latency[key] else { continue }
            let labels = "route=\"\(escape(key.route ?? HTTPServerMetrics.unmatchedRouteLabel))\",method=\"\(escape(key.method))\",status_class=\"\(key.statusClass)\""
            for (position, bound) in HTTPServerMetrics.latencyBucketBounds.enumerated() {
                lines.append("\(prefix)_request_duration_seconds_bucket{\(labels),le=\"\(bound)\"} \(histogram.buckets[position])")
            }
            let count = histogram.buckets[histogram.buckets.count - 1]
            lines.append("\(prefix)_request_duration_seconds_bucket{\(labels),le=\"+Inf\"} \(count)")
            lines.append("\(prefix)_request_duration_seconds_sum{\(labels)} \(histogram.sum)")
            lines.append("\(prefix)_request_duration_seconds_count{\(labels)} \(count)")
        }
        lines.append("# HELP \(prefix)_open_connections Connections open now.")
        lines.append("# TYPE \(prefix)_open_connections gauge")
        lines.append("\(prefix)_open_connections \(openConnections)")
        lines.append("# HELP \(prefix)_connections_total Connections accepted.")
        lines.append("# TYPE \(prefix)_connections_total counter")
        lines.append("\(prefix)_connections_total \(acceptedConnections)")
        lines.append("# HELP \(prefix)_rejected_connections_total Connections refused with 503 at the connection bound.")
        lines.append("# TYPE \(prefix)_rejected_connections_total counter")
        lines.append("\(prefix)_rejected_connections_total \(rejectedConnections)")
        lines.append("# HELP \(prefix)_rejected_bodies_total Requests refused because their content did not fit in the body memory budget.")
        lines.append("# TYPE \(prefix)_rejected_bodies_total counter")
        lines.append("\(prefix)_rejected_bodies_total \(rejectedBodies)")
        lines.append("# HELP \(prefix)_timed_out_connections_total Connections closed by a timeout.")
        lines.append("# TYPE \(prefix)_timed_out_connections_total counter")
        lines.append("\(prefix)_timed_out_connections_total \(timedOutConnections)")
        lines.append("# HELP \(prefix)_heap_trims_total Times the server asked the allocator to hand free heap back to the system after a burst of large request bodies drained.")
        lines.append("# TYPE \(prefix)_heap_trims_total counter")
        lines.append("\(prefix)_heap_trims_total \(heapTrims)")
        return lines.joined(separator: "\n") + "\n"
    }
}
