import Glibc

/// Encoding and file helpers for the safetensors format.
public enum Safetensors {
    /// The largest header a reader accepts by default (the reference implementation's limit).
    public static let maximumHeaderLength = 100_000_000

    /// Encodes float32 tensors and a metadata map as safetensors bytes.
    ///
    /// The output is deterministic: `__metadata__` first (omitted when empty), then tensors in
    /// sorted name order, each with its data laid out in that order; compact JSON; the header
    /// padded with spaces to a multiple of 8 bytes so the data section is 8-byte aligned, as the
    /// reference writer does.
    /// - Throws: `.invalidTensorName` for an empty name or `__metadata__`.
    /// - Complexity: O(total elements + k log k).
    public static func encode(
        _ tensors: [String: Tensor], metadata: [String: String] = [:]
    ) throws(SafetensorsError) -> [UInt8] {
        for name in tensors.keys where name.isEmpty || name == "__metadata__" {
            throw .invalidTensorName(name)
        }
        let names = tensors.keys.sorted()
        var header: [UInt8] = [UInt8(ascii: "{")]
        var first = true
        func separator() {
            if !first { header.append(UInt8(ascii: ",")) }
            first = false
        }
        if !metadata.isEmpty {
            separator()
            SafetensorsJSON.appendString("__metadata__", to: &header)
            header.append(contentsOf: Array(":{".utf8))
            for (index, key) in metadata.keys.sorted().enumerated() {
                if index > 0 { header.append(UInt8(ascii: ",")) }
                SafetensorsJSON.appendString(key, to: &header)
                header.append(UInt8(ascii: ":"))
                SafetensorsJSON.appendString(metadata[key] ?? "", to: &header)
            }
            header.append(UInt8(ascii: "}"))
        }
        var offset = 0
        for name in names {
            guard let tensor = tensors[name] else { continue }
            separator()
            SafetensorsJSON.appendString(name, to: &header)
            let shape = tensor.shape.map(String.init).joined(separator: ",")
            let end = offset + 4 * tensor.count
            header.append(contentsOf: Array(":{\"dtype\":\"F32\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(end)]}".utf8))
            offset = end
        }
        header.append(UInt8(ascii: "}"))
        header.append(contentsOf: repeatElement(UInt8(ascii: " "), count: (8 - header.count % 8) % 8))

        var output: [UInt8] = []
        output.reserveCapacity(8 + header.count + offset)
        let length = UInt64(header.count)
        for k in 0..<8 { output.append(UInt8(truncatingIfNeeded: length >> (8 * UInt64(k)))) }
        output.append(contentsOf: header)
        for name in names {
            guard let tensor = tensors[name] else { continue }
            tensor.withUnsafeBufferPointer { buffer in
                #if _endian(little)
                output.append(contentsOf: UnsafeRawBufferPointer(buffer))
                #else
                for value in buffer { withUnsafeBytes(of: value.bitPattern.littleEndian) { output.append(contentsOf: $0) } }
                #endif
            }
        }
        return output
    }

    /// Writes float32 tensors and metadata to `path` atomically.
    ///
    /// The bytes go to a temporary file in the same directory, which is flushed to disk (`fsync`)
    /// and then renamed over `path`, so a reader sees either the old file or the complete new one,
    /// even if the process dies mid-write.
    /// - Throws: `.invalidTensorName`, or `.fileError` naming the path and the system error.
    public static func write(
        _ tensors: [String: Tensor], metadata: [String: String] = [:], toFile path: String
    ) throws(SafetensorsError) {
        try SafetensorsFileIO.writeAtomically(try encode(tensors, metadata: metadata), to: path)
    }
}

/// Whole-file reads and atomic writes through the C library.
enum SafetensorsFileIO {
    static func systemMessage(_ code: Int32) -> String {
        guard let text = strerror(code) else { return "error \(code)" }
        return String(cString: text)
    }

    static func read(path: String) throws(SafetensorsError) -> [UInt8] {
        switch FileBytes.read(path) {
        case .success(let bytes): return bytes
        case .failure(let error): throw .fileError(path: path, message: error.message)
        }
    }

    static func writeAtomically(_ bytes: [UInt8], to path: String) throws(SafetensorsError) {
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[..<$0]) } ?? "."
        let base = slash.map { String(path[path.index(after: $0)...]) } ?? path
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var entropy = SeededGenerator(seed: UInt64(bitPattern: Int64(now.tv_nsec) ^ Int64(now.tv_sec) << 30)
            ^ UInt64(getpid()) << 40 ^ UInt64(pthread_self()))
        var temporary = ""
        var descriptor: Int32 = -1
        // Retry on a name clash with another writer's temporary file.
        for _ in 0..<8 {
            temporary = (directory.isEmpty ? "" : directory + "/") + ".\(base).\(String(entropy.next(), radix: 36)).tmp"
            descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            if descriptor >= 0 || errno != EEXIST { break }
        }
        guard descriptor >= 0 else { throw .fileError(path: temporary, message: systemMessage(errno)) }
        var failure: Int32 = 0
        bytes.withUnsafeBytes { buffer in
            var written = 0
            while written < buffer.count {
                let count = Glibc.write(descriptor, buffer.baseAddress! + written, buffer.count - written)
                if count < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    return
                }
                written += count
            }
        }
        if failure == 0 && fsync(descriptor) != 0 { failure = errno }
        if close(descriptor) != 0 && failure == 0 { failure = errno }
        if failure == 0 && rename(temporary, path) != 0 { failure = errno }
        if failure != 0 {
            unlink(temporary)
            throw .fileError(path: path, message: systemMessage(failure))
        }
        // Persist the rename itself; a directory that cannot be opened only loses that guarantee.
        let directoryDescriptor = open(directory.isEmpty ? "/" : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryDescriptor >= 0 {
            _ = fsync(directoryDescriptor)
            close(directoryDescriptor)
        }
    }
}
