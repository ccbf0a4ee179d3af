import Glibc
import TensorKit

/// Errors from reading an IDX file; each names the file.
public enum IDXError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file could not be read; the system's message.
    case unreadable(file: String, message: String)
    /// The file is gzip-compressed and its compressed stream is invalid.
    case gzip(file: String, GzipError)
    /// The file is shorter than its 4-byte magic number or its dimension list.
    case truncatedHeader(file: String, byteCount: Int)
    /// The magic number does not start with two zero bytes.
    case badMagic(file: String, magic: UInt32)
    /// The magic number's type byte is not one of the IDX element types.
    case unsupportedDataType(file: String, code: UInt8)
    /// The data length differs from the product of the dimensions times the element size.
    case lengthMismatch(file: String, expected: Int, found: Int)

    public var description: String {
        switch self {
        case .unreadable(let file, let message): return "\(file): \(message)"
        case .gzip(let file, let error): return "\(file): \(error)"
        case .truncatedHeader(let file, let count): return "\(file): \(count) bytes are too few for an IDX header"
        case .badMagic(let file, let magic):
            return "\(file): magic number 0x\(String(magic, radix: 16)) is not an IDX magic number"
        case .unsupportedDataType(let file, let code):
            return "\(file): IDX element type 0x\(String(code, radix: 16)) is not supported"
        case .lengthMismatch(let file, let expected, let found):
            return "\(file): the dimensions call for \(expected) bytes of data, the file holds \(found)"
        }
    }
}

/// An IDX file (the MNIST distribution format, yann.lecun.com/exdb/mnist): a big-endian magic
/// number `00 00 TT DD` (element type `TT`, `DD` dimensions), `DD` big-endian `UInt32`
/// dimensions, then the elements in row-major order, big-endian.
public struct IDXFile: Equatable, Sendable {
    /// The element types IDX defines.
    public enum DataType: UInt8, Sendable {
        case uint8 = 0x08, int8 = 0x09, int16 = 0x0B, int32 = 0x0C, float32 = 0x0D, float64 = 0x0E

        /// Bytes per element.
        public var size: Int {
            switch self {
            case .uint8, .int8: return 1
            case .int16: return 2
            case .int32, .float32: return 4
            case .float64: return 8
            }
        }
    }

    public var dataType: DataType
    public var dimensions: [Int]
    /// The elements as stored (big-endian for multi-byte types).
    public var payload: [UInt8]

    /// An IDX file from its parts; `payload` must hold exactly the elements the dimensions call for.
    public init(dataType: DataType, dimensions: [Int], payload: [UInt8]) {
        precondition(dimensions.count <= 255 && dimensions.allSatisfy { $0 >= 0 && $0 <= Int(UInt32.max) },
                     "invalid IDX dimensions \(dimensions)")
        precondition(payload.count == dimensions.reduce(1, *) * dataType.size,
                     "\(payload.count) payload bytes do not fit \(dimensions) of \(dataType)")
        self.dataType = dataType
        self.dimensions = dimensions
        self.payload = payload
    }

    /// Parses IDX bytes, gzip-compressed or not (recognised by the gzip magic bytes).
    /// - Parameter file: the name errors report.
    /// - Throws: `IDXError` naming `file`.
    /// - Complexity: O(size).
    public init(bytes: [UInt8], file: String) throws(IDXError) {
        var raw = bytes
        if Gzip.isGzip(bytes) {
            do { raw = try Gzip.decompress(bytes) } catch { throw .gzip(file: file, error) }
        }
        guard raw.count >= 4 else { throw .truncatedHeader(file: file, byteCount: raw.count) }
        let magic = UInt32(raw[0]) << 24 | UInt32(raw[1]) << 16 | UInt32(raw[2]) << 8 | UInt32(raw[3])
        guard raw[0] == 0, raw[1] == 0 else { throw .badMagic(file: file, magic: magic) }
        guard let dataType = DataType(rawValue: raw[2]) else { throw .unsupportedDataType(file: file, code: raw[2]) }
        let rank = Int(raw[3])
        let headerLength = 4 + 4 * rank
        guard raw.count >= headerLength else { throw .truncatedHeader(file: file, byteCount: raw.count) }
        var dimensions: [Int] = []
        var expected = dataType.size
        var overflow = false
        for k in 0..<rank {
            let base = 4 + 4 * k
            let extent = Int(raw[base]) << 24 | Int(raw[base + 1]) << 16 | Int(raw[base + 2]) << 8 | Int(raw[base + 3])
            dimensions.append(extent)
            let product = expected.multipliedReportingOverflow(by: extent)
            expected = product.partialValue
            overflow = overflow || product.overflow
        }
        let found = raw.count - headerLength
        guard !overflow, expected == found else {
            throw .lengthMismatch(file: file, expected: overflow ? Int.max : expected, found: found)
        }
        self.dataType = dataType
        self.dimensions = dimensions
        self.payload = Array(raw[headerLength...])
    }

    /// Reads and parses an IDX file, gzip-compressed or not.
    /// - Throws: `IDXError` naming `path`.
    public init(contentsOfFile path: String) throws(IDXError) {
        let bytes: [UInt8]
        switch FileBytes.read(path) {
        case .success(let data): bytes = data
        case .failure(let error): throw .unreadable(file: path, message: error.message)
        }
        try self.init(bytes: bytes, file: path)
    }

    /// The file's bytes, uncompressed.
    public func encoded() -> [UInt8] {
        var bytes: [UInt8] = [0, 0, dataType.rawValue, UInt8(dimensions.count)]
        for extent in dimensions {
            bytes += [UInt8(truncatingIfNeeded: extent >> 24), UInt8(truncatingIfNeeded: extent >> 16),
                      UInt8(truncatingIfNeeded: extent >> 8), UInt8(truncatingIfNeeded: extent)]
        }
        return bytes + payload
    }
}
