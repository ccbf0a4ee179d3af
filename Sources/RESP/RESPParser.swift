/// Reads RESP2 replies from bytes: a pure function of its input, so truncated and malformed
/// replies are tested without a socket.
///
/// The parser is restartable: given a prefix of a reply it answers `nil` (read more and call
/// again from the same start); given bytes that no continuation can make valid it throws.
public struct RESPParser: Sendable {
    /// Bounds on what one reply may hold, so a broken or hostile peer cannot make the client
    /// allocate without limit.
    public struct Limits: Sendable, Equatable {
        /// The longest bulk string.
        public var bulkBytes: Int
        /// The longest simple string, error or length line (without its CRLF).
        public var lineBytes: Int
        /// The most elements of one array.
        public var arrayCount: Int
        /// The deepest nesting of arrays.
        public var depth: Int

        public init(bulkBytes: Int = 512 << 20, lineBytes: Int = 64 << 10, arrayCount: Int = 1 << 20, depth: Int = 16) {
            self.bulkBytes = bulkBytes
            self.lineBytes = lineBytes
            self.arrayCount = arrayCount
            self.depth = depth
        }
    }

    public var limits: Limits

    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// Parses the reply that starts at `start`.
    ///
    /// - Returns: the reply and the index just after it, or `nil` when the bytes end before
    ///   the reply does.
    /// - Throws: `RedisError.malformedReply` when the bytes cannot begin a valid reply.
    /// - Complexity: O(length of the reply).
    public func parse(_ bytes: [UInt8], from start: Int = 0) throws(RedisError) -> (value: RESPValue, end: Int)? {
        try bytes.withUnsafeBufferPointer { buffer throws(RedisError) in
            try parse(buffer, at: start, depth: 0)
        }
    }

    private func parse(_ bytes: UnsafeBufferPointer<UInt8>, at start: Int, depth: Int) throws(RedisError) -> (value: RESPValue, end: Int)? {
        guard start < bytes.count else { return nil }
        let type = bytes[start]
        guard let (line, next) = try line(bytes, at: start + 1) else { return nil }
        switch type {
        case UInt8(ascii: "+"):
            return (.simpleString(String(decoding: line, as: UTF8.self)), next)
        case UInt8(ascii: "-"):
            return (.error(String(decoding: line, as: UTF8.self)), next)
        case UInt8(ascii: ":"):
            guard let value = Self.integer(line) else { throw .malformedReply(.invalidInteger(Self.text(line), offset: start)) }
            return (.integer(value), next)
        case UInt8(ascii: "$"):
            guard let length = Self.integer(line), length >= -1 else { throw .malformedReply(.invalidLength(Self.text(line), offset: start)) }
            if length == -1 { return (.null, next) }
            guard length <= limits.bulkBytes else { throw .malformedReply(.bulkTooLarge(length: Int(length), limit: limits.bulkBytes)) }
            let count = Int(length)
            guard bytes.count - next >= count + 2 else { return nil }
            guard bytes[next + count] == 13, bytes[next + count + 1] == 10 else {
                throw .malformedReply(.missingTerminator(offset: next + count))
            }
            return (.bulkString(Array(bytes[next..<(next + count)])), next + count + 2)
        case UInt8(ascii: "*"):
            guard let length = Self.integer(line), length >= -1 else { throw .malformedReply(.invalidLength(Self.text(line), offset: start)) }
            if length == -1 { return (.null, next) }
            guard length <= limits.arrayCount else { throw .malformedReply(.arrayTooLarge(count: Int(length), limit: limits.arrayCount)) }
            guard depth < limits.depth else { throw .malformedReply(.nestingTooDeep(limit: limits.depth)) }
            var elements: [RESPValue] = []
            // Every element takes at least 3 bytes, so the bytes at hand bound the reservation.
            elements.reserveCapacity(min(Int(length), (bytes.count - next) / 3))
            var position = next
            for _ in 0..<Int(length) {
                guard let (element, end) = try parse(bytes, at: position, depth: depth + 1) else { return nil }
                elements.append(element)
                position = end
            }
            return (.array(elements), position)
        default:
            throw .malformedReply(.unknownType(byte: type, offset: start))
        }
    }

    /// The bytes from `start` to the next CRLF, and the index after it; `nil` when no CRLF
    /// arrived yet.
    private func line(_ bytes: UnsafeBufferPointer<UInt8>, at start: Int) throws(RedisError) -> (UnsafeBufferPointer<UInt8>.SubSequence, Int)? {
        var index = start
        let end = min(bytes.count, start + limits.lineBytes + 1)
        while index < end {
            switch bytes[index] {
            case 13:
                guard index + 1 < bytes.count else { return nil }
                guard bytes[index + 1] == 10 else { throw .malformedReply(.missingTerminator(offset: index)) }
                return (bytes[start..<index], index + 2)
            case 10:
                throw .malformedReply(.missingTerminator(offset: index))
            default:
                index += 1
            }
        }
        if end - start > limits.lineBytes { throw .malformedReply(.lineTooLong(limit: limits.lineBytes)) }
        return nil
    }

    /// A RESP integer: an optional `-` then decimal digits, within `Int64`.
    private static func integer(_ line: UnsafeBufferPointer<UInt8>.SubSequence) -> Int64? {
        guard !line.isEmpty, line.count <= 20 else { return nil }
        let negative = line.first == UInt8(ascii: "-")
        let digits = negative ? line.dropFirst() : line[...]
        guard !digits.isEmpty else { return nil }
        var value: Int64 = 0
        for byte in digits {
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
            let digit = Int64(byte - UInt8(ascii: "0"))
            let (shifted, overflowA) = value.multipliedReportingOverflow(by: 10)
            let (next, overflowB) = negative ? shifted.subtractingReportingOverflow(digit) : shifted.addingReportingOverflow(digit)
            guard !overflowA, !overflowB else { return nil }
            value = next
        }
        return value
    }

    private static func text(_ line: UnsafeBufferPointer<UInt8>.SubSequence) -> String {
        String(decoding: line.prefix(32), as: UTF8.self)
    }
}
