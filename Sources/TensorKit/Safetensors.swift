/// Errors from reading, validating or writing a safetensors file.
///
/// Every case that concerns one tensor carries its name, so a message can point at it.
public enum SafetensorsError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The input is shorter than the 8-byte header length.
    case truncated(byteCount: Int)
    /// The declared header length runs past the end of the input.
    case headerTooLarge(declared: UInt64, available: Int)
    /// The declared header length exceeds the reader's limit (`Safetensors.maximumHeaderLength`).
    case headerLengthExceedsLimit(declared: UInt64, limit: Int)
    /// The header is not valid JSON (the message says what and where).
    case invalidJSON(String)
    /// The header is valid JSON but not a valid safetensors header (the message says why).
    case invalidHeader(String)
    /// A tensor's dtype is not one this reader knows.
    case unsupportedDType(tensor: String, dtype: String)
    /// A tensor's `data_offsets` are reversed or run past the end of the data section.
    case offsetsOutOfRange(tensor: String, begin: Int, end: Int, dataLength: Int)
    /// Two tensors claim overlapping bytes.
    case overlappingData(tensor: String, other: String)
    /// Bytes of the data section that no tensor covers (the reference reader rejects these too).
    case uncoveredData(begin: Int, end: Int)
    /// A tensor's byte count does not equal its element count times the dtype's size.
    case byteCountMismatch(tensor: String, shape: [Int], dtype: String, byteCount: Int)
    /// The same tensor name appears twice (in a header, or in the tensors given to the writer).
    case duplicateTensor(String)
    /// A tensor that was asked for is not in the file.
    case missingTensor(String)
    /// A tensor in the file that a strict load did not use.
    case unusedTensor(String)
    /// A tensor whose shape differs from the one the model expects.
    case shapeMismatch(tensor: String, expected: [Int], found: [Int])
    /// A tensor whose dtype differs from the one the caller requires.
    case dtypeMismatch(tensor: String, expected: String, found: String)
    /// A tensor name the writer refuses (empty, or the reserved `__metadata__`).
    case invalidTensorName(String)
    /// A file could not be read or written; `message` is the system's description of `errno`.
    case fileError(path: String, message: String)
    /// The SHA-256 of the data section differs from the `checksum.sha256` metadata entry: the
    /// tensor data was damaged or changed after it was written.
    case checksumMismatch(expected: String, found: String)
    /// The `checksum.sha256` metadata entry is not 64 lowercase hexadecimal digits.
    case invalidChecksum(String)

    public var description: String {
        switch self {
        case .truncated(let count):
            return "safetensors data of \(count) bytes is too short to hold the 8-byte header length"
        case .headerTooLarge(let declared, let available):
            return "safetensors header length \(declared) exceeds the \(available) bytes that follow it"
        case .headerLengthExceedsLimit(let declared, let limit):
            return "safetensors header length \(declared) exceeds the limit of \(limit) bytes"
        case .invalidJSON(let message): return "safetensors header is not valid JSON: \(message)"
        case .invalidHeader(let message): return "invalid safetensors header: \(message)"
        case .unsupportedDType(let tensor, let dtype): return "tensor '\(tensor)' has unsupported dtype \(dtype)"
        case .offsetsOutOfRange(let tensor, let begin, let end, let length):
            return "tensor '\(tensor)' has data offsets [\(begin), \(end)] outside the \(length)-byte data section"
        case .overlappingData(let tensor, let other): return "tensors '\(tensor)' and '\(other)' overlap"
        case .uncoveredData(let begin, let end): return "data bytes \(begin)..<\(end) belong to no tensor"
        case .byteCountMismatch(let tensor, let shape, let dtype, let count):
            return "tensor '\(tensor)' of shape \(shape) and dtype \(dtype) has \(count) bytes of data"
        case .duplicateTensor(let name): return "tensor '\(name)' appears more than once"
        case .missingTensor(let name): return "tensor '\(name)' is missing"
        case .unusedTensor(let name): return "tensor '\(name)' is not used by the model"
        case .shapeMismatch(let tensor, let expected, let found):
            return "tensor '\(tensor)' has shape \(found), expected \(expected)"
        case .dtypeMismatch(let tensor, let expected, let found):
            return "tensor '\(tensor)' has dtype \(found), expected \(expected)"
        case .invalidTensorName(let name): return "invalid tensor name '\(name)'"
        case .fileError(let path, let message): return "\(path): \(message)"
        case .checksumMismatch(let expected, let found):
            return "the tensor data is damaged: its SHA-256 is \(found), the metadata's \(Safetensors.checksumKey) is \(expected)"
        case .invalidChecksum(let value):
            return "\(Safetensors.checksumKey) '\(value.prefix(80))' is not 64 lowercase hexadecimal digits"
        }
    }
}

/// The element types of the safetensors format that this reader understands.
public enum SafetensorsDType: String, Sendable, CaseIterable {
    case float64 = "F64", float32 = "F32", float16 = "F16", bfloat16 = "BF16"
    case int64 = "I64", int32 = "I32", int16 = "I16", int8 = "I8", uint8 = "U8", bool = "BOOL"

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .float64, .int64: return 8
        case .float32, .int32: return 4
        case .float16, .bfloat16, .int16: return 2
        case .int8, .uint8, .bool: return 1
        }
    }

    public var isFloatingPoint: Bool { self == .float64 || self == .float32 || self == .float16 || self == .bfloat16 }
}

/// A parsed safetensors file: header entries, metadata, and the raw data section.
///
/// Format (huggingface/safetensors, `docs/source/index.mdx`): an unsigned 64-bit little-endian
/// header length `N`, then `N` bytes of UTF-8 JSON mapping each tensor name to
/// `{"dtype", "shape", "data_offsets": [begin, end]}` plus an optional `"__metadata__"` string map,
/// then the little-endian tensor data; offsets count from the start of the data section.
///
/// Parsing validates everything the reference reader does: header bounds, JSON syntax, duplicate
/// names, known dtypes, offsets inside the data, byte counts that match shapes, and that the tensors
/// tile the data section without overlaps or gaps. When `__metadata__` holds `checksum.sha256`
/// (``Safetensors/checksumKey``, written by ``Safetensors/write(_:metadata:toFile:)``), the data
/// section's SHA-256 must equal it.
public struct SafetensorsFile: Sendable {
    /// One tensor's header entry.
    public struct Entry: Equatable, Sendable {
        public var dtype: SafetensorsDType
        public var shape: [Int]
        /// The tensor's bytes as a range of `SafetensorsFile.data`.
        public var byteRange: Range<Int>
    }

    /// The `__metadata__` map (empty when the file has none).
    public var metadata: [String: String]
    /// The tensors by name.
    public var entries: [String: Entry]
    /// The data section (everything after the header).
    public var data: [UInt8]

    /// Tensor names in sorted order.
    public var names: [String] { entries.keys.sorted() }

    /// Whether the data section was checked against a `checksum.sha256` entry (files written by
    /// this project carry one; PyTorch exports usually do not).
    public var isChecksumVerified: Bool { metadata[Safetensors.checksumKey] != nil }

    /// Parses and validates safetensors bytes.
    /// - Parameter maximumHeaderLength: headers declared longer than this are refused before any
    ///   parsing (the reference reader's limit is 100,000,000 bytes).
    /// - Throws: `SafetensorsError` naming the first problem found; `.checksumMismatch` when the
    ///   data section's SHA-256 differs from the metadata's `checksum.sha256`.
    /// - Complexity: O(file size + k log k) for k tensors.
    public init(bytes: [UInt8], maximumHeaderLength: Int = Safetensors.maximumHeaderLength) throws(SafetensorsError) {
        guard bytes.count >= 8 else { throw .truncated(byteCount: bytes.count) }
        var declared: UInt64 = 0
        for k in 0..<8 { declared |= UInt64(bytes[k]) << (8 * UInt64(k)) }
        guard declared <= UInt64(maximumHeaderLength) else {
            throw .headerLengthExceedsLimit(declared: declared, limit: maximumHeaderLength)
        }
        guard declared <= UInt64(bytes.count - 8) else {
            throw .headerTooLarge(declared: declared, available: bytes.count - 8)
        }
        let headerLength = Int(declared)
        let json: SafetensorsJSON
        do {
            json = try bytes.withUnsafeBufferPointer { buffer throws(SafetensorsJSONSyntaxError) in
                try SafetensorsJSONParser.parse(UnsafeBufferPointer(rebasing: buffer[8..<(8 + headerLength)]))
            }
        } catch {
            if let duplicate = error.duplicate, duplicate.depth == 0 {
                throw duplicate.key == "__metadata__"
                    ? .invalidHeader("__metadata__ appears more than once") : .duplicateTensor(duplicate.key)
            }
            throw .invalidJSON(error.description)
        }
        let dataLength = bytes.count - 8 - headerLength
        let (entries, metadata) = try Self.validate(header: json, dataLength: dataLength)
        if let expected = metadata[Safetensors.checksumKey] {
            guard expected.utf8.count == 64, expected.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else {
                throw .invalidChecksum(expected)
            }
            let found = bytes.withUnsafeBytes { SHA256.hex(of: UnsafeRawBufferPointer(rebasing: $0[(8 + headerLength)...])) }
            guard found == expected else { throw .checksumMismatch(expected: expected, found: found) }
        }
        self.entries = entries
        self.metadata = metadata
        self.data = Array(bytes[(8 + headerLength)...])
    }

    /// Reads and parses a safetensors file.
    /// - Throws: `SafetensorsError.fileError` when the file cannot be read, or any parse error.
    public init(contentsOfFile path: String, maximumHeaderLength: Int = Safetensors.maximumHeaderLength) throws(SafetensorsError) {
        try self.init(bytes: try SafetensorsFileIO.read(path: path), maximumHeaderLength: maximumHeaderLength)
    }

    private static func validate(
        header: SafetensorsJSON, dataLength: Int
    ) throws(SafetensorsError) -> ([String: Entry], [String: String]) {
        guard case .object(let members) = header else { throw .invalidHeader("the header is not a JSON object") }
        var entries: [String: Entry] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in members {
            if name == "__metadata__" {
                guard case .object(let pairs) = value else { throw .invalidHeader("__metadata__ is not an object") }
                for (key, item) in pairs {
                    guard case .string(let text) = item else {
                        throw .invalidHeader("__metadata__ value for '\(key)' is not a string")
                    }
                    metadata[key] = text
                }
                continue
            }
            entries[name] = try entry(name: name, value: value, dataLength: dataLength)
        }
        // The tensors must tile the data section exactly, as the reference reader requires.
        let ordered = entries.sorted {
            ($0.value.byteRange.lowerBound, $0.value.byteRange.upperBound, $0.key)
                < ($1.value.byteRange.lowerBound, $1.value.byteRange.upperBound, $1.key)
        }
        var covered = 0
        var previous: String? = nil
        for (name, entry) in ordered {
            if entry.byteRange.lowerBound < covered, let previous {
                throw .overlappingData(tensor: previous, other: name)
            }
            if entry.byteRange.lowerBound > covered {
                throw .uncoveredData(begin: covered, end: entry.byteRange.lowerBound)
            }
            // Zero-byte tensors share their offset with a neighbour without overlapping it.
            if !entry.byteRange.isEmpty { previous = name }
            covered = max(covered, entry.byteRange.upperBound)
        }
        if covered < dataLength { throw .uncoveredData(begin: covered, end: dataLength) }
        return (entries, metadata)
    }

    private static func entry(name: String, value: SafetensorsJSON, dataLength: Int) throws(SafetensorsError) -> Entry {
        guard case .object(let fields) = value else { throw .invalidHeader("entry '\(name)' is not an object") }
        var dtypeText: String?
        var shapeValue: SafetensorsJSON?
        var offsetsValue: SafetensorsJSON?
        for (key, field) in fields {
            switch key {
            case "dtype":
                guard case .string(let text) = field else { throw .invalidHeader("dtype of '\(name)' is not a string") }
                dtypeText = text
            case "shape": shapeValue = field
            case "data_offsets": offsetsValue = field
            default: throw .invalidHeader("entry '\(name)' has unknown field '\(key)'")
            }
        }
        guard let dtypeText else { throw .invalidHeader("entry '\(name)' has no dtype") }
        guard case .array(let shapeItems)? = shapeValue else {
            throw .invalidHeader("entry '\(name)' has no shape array")
        }
        guard case .array(let offsetItems)? = offsetsValue, offsetItems.count == 2 else {
            throw .invalidHeader("entry '\(name)' has no data_offsets pair")
        }
        var shape: [Int] = []
        var elementCount = 1
        for item in shapeItems {
            guard let extent = item.nonNegativeInteger else {
                throw .invalidHeader("shape of '\(name)' holds something other than a non-negative integer")
            }
            let (product, overflow) = elementCount.multipliedReportingOverflow(by: extent)
            guard !overflow else { throw .invalidHeader("shape of '\(name)' has too many elements") }
            shape.append(extent)
            elementCount = product
        }
        guard let begin = offsetItems[0].nonNegativeInteger, let end = offsetItems[1].nonNegativeInteger else {
            throw .invalidHeader("data_offsets of '\(name)' are not non-negative integers")
        }
        guard let dtype = SafetensorsDType(rawValue: dtypeText) else {
            throw .unsupportedDType(tensor: name, dtype: dtypeText)
        }
        guard begin <= end, end <= dataLength else {
            throw .offsetsOutOfRange(tensor: name, begin: begin, end: end, dataLength: dataLength)
        }
        let (byteCount, overflow) = elementCount.multipliedReportingOverflow(by: dtype.size)
        guard !overflow, byteCount == end - begin else {
            throw .byteCountMismatch(tensor: name, shape: shape, dtype: dtypeText, byteCount: end - begin)
        }
        return Entry(dtype: dtype, shape: shape, byteRange: begin..<end)
    }
}

extension SafetensorsFile {
    /// A tensor converted to float32 (F32 as is; F64, F16, BF16 rounded; integers and BOOL
    /// converted exactly up to 2²⁴ and rounded above).
    /// - Throws: `SafetensorsError.missingTensor` when there is no such tensor.
    public func tensor(named name: String) throws(SafetensorsError) -> Tensor {
        guard let entry = entries[name] else { throw .missingTensor(name) }
        let count = entry.shape.reduce(1, *)
        var storage = [Float](repeating: 0, count: count)
        data.withUnsafeBytes { raw in
            let source = UnsafeRawBufferPointer(rebasing: raw[entry.byteRange])
            storage.withUnsafeMutableBufferPointer { out in
                Self.convert(source, dtype: entry.dtype, into: out)
            }
        }
        return Tensor(shape: entry.shape, storage: storage)
    }

    /// An integer tensor's elements (I64, I32, I16, I8, U8, BOOL), for example PyTorch's
    /// `num_batches_tracked`; shape `entries[name].shape`, row-major.
    /// - Throws: `.missingTensor`, or `.dtypeMismatch` for a floating-point tensor.
    public func integers(named name: String) throws(SafetensorsError) -> [Int64] {
        guard let entry = entries[name] else { throw .missingTensor(name) }
        guard !entry.dtype.isFloatingPoint else {
            throw .dtypeMismatch(tensor: name, expected: "an integer dtype", found: entry.dtype.rawValue)
        }
        let size = entry.dtype.size
        let count = entry.byteRange.count / size
        var result = [Int64](repeating: 0, count: count)
        for i in 0..<count {
            let base = entry.byteRange.lowerBound + i * size
            var bits: UInt64 = 0
            for k in 0..<size { bits |= UInt64(data[base + k]) << (8 * UInt64(k)) }
            switch entry.dtype {
            case .int64: result[i] = Int64(bitPattern: bits)
            case .int32: result[i] = Int64(Int32(truncatingIfNeeded: bits))
            case .int16: result[i] = Int64(Int16(truncatingIfNeeded: bits))
            case .int8: result[i] = Int64(Int8(truncatingIfNeeded: bits))
            default: result[i] = Int64(bits)
            }
        }
        return result
    }

    /// Loads exactly the named float32 tensors a model expects, strictly.
    ///
    /// Every expected name must be present with the expected shape and dtype F32, and every tensor
    /// in the file must be expected or ignored. Nothing is returned unless all checks pass, so a
    /// caller that assigns the result only on success leaves its model unchanged on error.
    /// - Parameters:
    ///   - expected: tensor names and their shapes.
    ///   - ignoring: names the file may contain that are skipped (for example names ending in
    ///     `num_batches_tracked`).
    /// - Throws: `.missingTensor`, `.shapeMismatch`, `.dtypeMismatch` or `.unusedTensor`, checked
    ///   in that order over sorted names.
    public func tensors(
        expected: [String: [Int]], ignoring: (String) -> Bool = { _ in false }
    ) throws(SafetensorsError) -> [String: Tensor] {
        var result: [String: Tensor] = [:]
        for (name, shape) in expected.sorted(by: { $0.key < $1.key }) {
            guard let entry = entries[name] else { throw .missingTensor(name) }
            guard entry.shape == shape else { throw .shapeMismatch(tensor: name, expected: shape, found: entry.shape) }
            guard entry.dtype == .float32 else {
                throw .dtypeMismatch(tensor: name, expected: SafetensorsDType.float32.rawValue, found: entry.dtype.rawValue)
            }
            result[name] = try tensor(named: name)
        }
        for name in names where expected[name] == nil && !ignoring(name) {
            throw .unusedTensor(name)
        }
        return result
    }

    static func convert(_ source: UnsafeRawBufferPointer, dtype: SafetensorsDType, into out: UnsafeMutableBufferPointer<Float>) {
        switch dtype {
        case .float32:
            #if _endian(little)
            if let base = source.baseAddress, let target = out.baseAddress, !out.isEmpty {
                UnsafeMutableRawPointer(target).copyMemory(from: base, byteCount: source.count)
            }
            #else
            for i in 0..<out.count { out[i] = Float(bitPattern: UInt32(littleEndian: source.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
            #endif
        case .float64:
            for i in 0..<out.count {
                out[i] = Float(Double(bitPattern: UInt64(littleEndian: source.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
            }
        case .float16:
            for i in 0..<out.count {
                out[i] = halfToFloat(UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            }
        case .bfloat16:
            for i in 0..<out.count {
                let bits = UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                out[i] = Float(bitPattern: UInt32(bits) << 16)
            }
        case .int64:
            for i in 0..<out.count { out[i] = Float(Int64(littleEndian: source.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))) }
        case .int32:
            for i in 0..<out.count { out[i] = Float(Int32(littleEndian: source.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))) }
        case .int16:
            for i in 0..<out.count { out[i] = Float(Int16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self))) }
        case .int8:
            for i in 0..<out.count { out[i] = Float(Int8(bitPattern: source[i])) }
        case .uint8, .bool:
            for i in 0..<out.count { out[i] = Float(source[i]) }
        }
    }

    /// IEEE 754 binary16 to binary32, exact (subnormals, infinities and NaN included).
    static func halfToFloat(_ bits: UInt16) -> Float {
        let sign = UInt32(bits >> 15) << 31
        let exponent = Int(bits >> 10) & 0x1F
        let mantissa = UInt32(bits & 0x3FF)
        if exponent == 0 {
            let magnitude = Float(mantissa) * 0x1p-24
            return sign == 0 ? magnitude : -magnitude
        }
        if exponent == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13)) }
        return Float(bitPattern: sign | (UInt32(exponent + 112) << 23) | (mantissa << 13))
    }
}
