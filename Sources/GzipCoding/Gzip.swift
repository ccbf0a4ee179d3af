import CZlib

/// Errors from gzip decompression.
public enum GzipError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The data does not start with the gzip magic bytes `1f 8b` (RFC 1952 §2.3.1).
    case notGzip
    /// The stream ends before its last member is complete.
    case truncated
    /// zlib reported corrupt data; its message (for example "incorrect data check").
    case corrupt(String)
    /// Bytes after the last member that are neither another member nor zero padding.
    case trailingData(offset: Int)
    /// The decompressed size would exceed the caller's limit.
    case outputTooLarge(limit: Int)

    public var description: String {
        switch self {
        case .notGzip: return "not gzip data"
        case .truncated: return "gzip data is truncated"
        case .corrupt(let message): return "corrupt gzip data: \(message)"
        case .trailingData(let offset): return "unexpected data after the gzip stream at byte \(offset)"
        case .outputTooLarge(let limit): return "gzip data expands beyond the limit of \(limit) bytes"
        }
    }
}

/// gzip (RFC 1952) through zlib.
public enum Gzip {
    /// Whether data starts with the gzip magic bytes.
    public static func isGzip(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B
    }

    /// Decompresses gzip data, including several concatenated members (RFC 1952 §2.2, as
    /// `gzip -d` does); zero bytes after the last member are ignored as padding.
    ///
    /// zlib inflates with `windowBits = 16 + MAX_WBITS` (gzip header and CRC-32 checked) into an
    /// output buffer sized from the trailer's ISIZE hint and grown as needed.
    /// - Parameter maximumOutput: refuse data that expands beyond this many bytes.
    /// - Throws: `GzipError`.
    /// - Complexity: O(input + output).
    public static func decompress(_ bytes: [UInt8], maximumOutput: Int = Int.max) throws(GzipError) -> [UInt8] {
        guard isGzip(bytes) else { throw .notGzip }
        var stream = z_stream()
        guard inflateInit2_(&stream, 16 + MAX_WBITS, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw .corrupt("zlib could not be initialised")
        }
        defer { inflateEnd(&stream) }

        // ISIZE (the last 4 bytes) is the size modulo 2³² of the last member only: a hint.
        let hint = bytes.count >= 18
            ? Int(bytes[bytes.count - 4]) | Int(bytes[bytes.count - 3]) << 8
                | Int(bytes[bytes.count - 2]) << 16 | Int(bytes[bytes.count - 1]) << 24
            : 0
        // deflate cannot expand data by more than about 1032:1, so a larger hint is a lie.
        let plausible = min(max(hint, 4096, 2 * bytes.count), 1032 * bytes.count)
        var output = [UInt8](repeating: 0, count: min(plausible, maximumOutput == Int.max ? Int.max : maximumOutput + 1))
        var produced = 0
        var consumed = 0
        var result: Result<Void, GzipError> = .success(())
        bytes.withUnsafeBufferPointer { input in
            while true {
                if produced == output.count {
                    guard output.count <= maximumOutput else { result = .failure(.outputTooLarge(limit: maximumOutput)); return }
                    let grown = output.count > maximumOutput / 2 ? maximumOutput + 1 : 2 * output.count
                    output.append(contentsOf: repeatElement(0, count: grown - output.count))
                }
                let chunkIn = min(input.count - consumed, Int(UInt32.max))
                let chunkOut = min(output.count - produced, Int(UInt32.max))
                let status: Int32 = output.withUnsafeMutableBufferPointer { out in
                    stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress! + consumed)
                    stream.avail_in = UInt32(chunkIn)
                    stream.next_out = out.baseAddress! + produced
                    stream.avail_out = UInt32(chunkOut)
                    return inflate(&stream, Z_NO_FLUSH)
                }
                consumed += chunkIn - Int(stream.avail_in)
                produced += chunkOut - Int(stream.avail_out)
                switch status {
                case Z_OK:
                    continue
                case Z_STREAM_END:
                    let rest = input[consumed...]
                    if rest.isEmpty || rest.allSatisfy({ $0 == 0 }) { return }
                    guard rest.count >= 2, rest[consumed] == 0x1F, rest[consumed + 1] == 0x8B else {
                        result = .failure(.trailingData(offset: consumed)); return
                    }
                    inflateReset(&stream)
                case Z_BUF_ERROR:
                    // No progress possible: either the output is full (grow it) or the input ended.
                    if produced < output.count { result = .failure(.truncated); return }
                default:
                    let message = stream.msg.map { String(cString: $0) } ?? "zlib error \(status)"
                    result = .failure(.corrupt(message)); return
                }
            }
        }
        try result.get()
        guard produced <= maximumOutput else { throw .outputTooLarge(limit: maximumOutput) }
        output.removeLast(output.count - produced)
        return output
    }

    /// Compresses data as a single gzip member with a zero modification time, so equal input
    /// gives equal output.
    /// - Parameter level: zlib compression level, 0 (store) to 9 (smallest).
    public static func compress(_ bytes: [UInt8], level: Int = 9) -> [UInt8] {
        precondition((0...9).contains(level), "compression level \(level) outside 0...9")
        var stream = z_stream()
        let initialised = deflateInit2_(&stream, Int32(level), Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY,
                                        zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        precondition(initialised == Z_OK, "deflateInit2 failed with \(initialised)")
        defer { deflateEnd(&stream) }
        let bound = Int(deflateBound(&stream, UInt(bytes.count))) + 64
        var output = [UInt8](repeating: 0, count: bound)
        var status: Int32 = Z_OK
        var written = 0
        bytes.withUnsafeBufferPointer { input in
            output.withUnsafeMutableBufferPointer { out in
                stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
                stream.avail_in = UInt32(input.count)
                stream.next_out = out.baseAddress
                stream.avail_out = UInt32(out.count)
                status = deflate(&stream, Z_FINISH)
                written = out.count - Int(stream.avail_out)
            }
        }
        precondition(status == Z_STREAM_END, "deflate with a bound-sized buffer returned \(status)")
        output.removeLast(output.count - written)
        return output
    }
}
