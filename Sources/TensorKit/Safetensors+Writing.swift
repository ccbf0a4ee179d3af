import Glibc

/// Encoding and file helpers for the safetensors format.
public enum Safetensors {
    /// The largest header a reader accepts by default (the reference implementation's limit).
    public static let maximumHeaderLength = 100_000_000

    /// The `__metadata__` key holding the SHA-256 of the data section, in lowercase hexadecimal
    /// (the bytes after the header, so `tail -c +$((9 + N)) FILE | sha256sum` shows the same).
    public static let checksumKey = "checksum.sha256"

    /// Encodes float32 tensors and a metadata map as safetensors bytes.
    ///
    /// The output is deterministic: `__metadata__` first (omitted when empty), then tensors in
    /// sorted name order, each with its data laid out in that order; compact JSON; the header
    /// padded with spaces to a multiple of 8 bytes so the data section is 8-byte aligned, as the
    /// reference writer does.
    /// - Parameter checksum: whether to record the data section's SHA-256 as ``checksumKey`` (any
    ///   such entry of `metadata` is replaced).
    /// - Throws: `.invalidTensorName` for an empty name or `__metadata__`.
    /// - Complexity: O(total elements + k log k).
    public static func encode(
        _ tensors: [String: Tensor], metadata: [String: String] = [:], checksum: Bool = false
    ) throws(SafetensorsError) -> [UInt8] {
        for name in tensors.keys where name.isEmpty || name == "__metadata__" {
            throw .invalidTensorName(name)
        }
        let names = tensors.keys.sorted()
        var metadata = metadata
        if checksum {
            var hasher = SHA256()
            for name in names {
                guard let tensor = tensors[name] else { continue }
                tensor.withUnsafeBufferPointer { buffer in
                    #if _endian(little)
                    hasher.update(UnsafeRawBufferPointer(buffer))
                    #else
                    for value in buffer { withUnsafeBytes(of: value.bitPattern.littleEndian) { hasher.update($0) } }
                    #endif
                }
            }
            metadata[checksumKey] = hasher.hexDigest()
        }
        var header: [UInt8] = [UInt8(ascii: "{")]
        var first = true
        func separator() {
            if !first { header.append(UInt8(ascii: ",")) }
            first = false
        }
        if !metadata.isEmpty {
            separator()
            appendMetadata(metadata, to: &header)
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

    /// `"__metadata__":{…}` with the keys in sorted order, as compact JSON.
    private static func appendMetadata(_ metadata: [String: String], to header: inout [UInt8]) {
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

    /// Writes float32 tensors and metadata to `path` atomically.
    ///
    /// The bytes go to a temporary file in the same directory, which is flushed to disk (`fsync`)
    /// and then renamed over `path`, so a reader sees either the old file or the complete new one,
    /// even if the process dies mid-write. The metadata gets the data's SHA-256 as ``checksumKey``,
    /// which every reader verifies.
    /// - Throws: `.invalidTensorName`, or `.fileError` naming the path and the system error.
    public static func write(
        _ tensors: [String: Tensor], metadata: [String: String] = [:], toFile path: String
    ) throws(SafetensorsError) {
        try SafetensorsFileIO.writeAtomically(try encode(tensors, metadata: metadata, checksum: true), to: path)
    }

    /// Encodes a parsed file with new metadata and the SHA-256 of its data as ``checksumKey``; the
    /// tensors' dtypes, shapes, offsets and bytes are kept exactly (no conversion to float32).
    ///
    /// Entries are written in data order, so the data section is the original one byte for byte.
    public static func encode(_ file: SafetensorsFile, metadata: [String: String]) -> [UInt8] {
        var metadata = metadata
        metadata[checksumKey] = SHA256.hex(of: file.data)
        var header: [UInt8] = [UInt8(ascii: "{")]
        appendMetadata(metadata, to: &header)
        let ordered = file.entries.sorted {
            ($0.value.byteRange.lowerBound, $0.value.byteRange.upperBound, $0.key)
                < ($1.value.byteRange.lowerBound, $1.value.byteRange.upperBound, $1.key)
        }
        for (name, entry) in ordered {
            header.append(UInt8(ascii: ","))
            SafetensorsJSON.appendString(name, to: &header)
            let shape = entry.shape.map(String.init).joined(separator: ",")
            header.append(contentsOf: Array(
                ":{\"dtype\":\"\(entry.dtype.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(entry.byteRange.lowerBound),\(entry.byteRange.upperBound)]}".utf8))
        }
        header.append(UInt8(ascii: "}"))
        header.append(contentsOf: repeatElement(UInt8(ascii: " "), count: (8 - header.count % 8) % 8))
        var output: [UInt8] = []
        output.reserveCapacity(8 + header.count + file.data.count)
        let length = UInt64(header.count)
        for k in 0..<8 { output.append(UInt8(truncatingIfNeeded: length >> (8 * UInt64(k)))) }
        output.append(contentsOf: header)
        output.append(contentsOf: file.data)
        return output
    }

    /// Rewrites `path` atomically with its metadata replaced by `metadata` (plus the checksum) and
    /// its tensor data unchanged byte for byte: how a checksum is added to an existing file.
    /// - Throws: `SafetensorsError` for a malformed or damaged file, or `.fileError`.
    public static func rewriteMetadata(ofFile path: String, _ update: ([String: String]) -> [String: String]) throws(SafetensorsError) {
        let file = try SafetensorsFile(contentsOfFile: path)
        try SafetensorsFileIO.writeAtomically(encode(file, metadata: update(file.metadata)), to: path)
    }

    /// Removes the temporary files that interrupted atomic writes of `path` left behind:
    /// `.NAME.PID.RANDOM.tmp` in `path`'s directory whose writing process no longer runs (or is
    /// this one, whose own writes never leave one). Files of other names are never touched, nor
    /// those of a live writer.
    /// - Returns: the paths removed.
    @discardableResult
    public static func removeStaleTemporaryFiles(of path: String) -> [String] {
        SafetensorsFileIO.removeStaleTemporaryFiles(of: path)
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

    /// The directory and file name of a path (`.` for a bare name).
    static func split(_ path: String) -> (directory: String, base: String) {
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[..<$0]) } ?? "."
        let base = slash.map { String(path[path.index(after: $0)...]) } ?? path
        return (directory, base)
    }

    /// Who wrote a temporary file of `base`: `.writer(pid)` for `.BASE.PID.RANDOM.tmp` (PID
    /// decimal, RANDOM base 36), `.unknown` for the `.BASE.RANDOM.tmp` of earlier versions, nil for
    /// any other name.
    static func temporaryFileWriter(_ name: String, base: String) -> TemporaryFileWriter? {
        let prefix = "." + base + ".", suffix = ".tmp"
        guard name.hasPrefix(prefix), name.hasSuffix(suffix), name.count > prefix.count + suffix.count else { return nil }
        let parts = name.dropFirst(prefix.count).dropLast(suffix.count).split(separator: ".", omittingEmptySubsequences: false)
        func isRandom(_ part: Substring) -> Bool {
            !part.isEmpty && part.count <= 13 && part.utf8.allSatisfy { (48...57).contains($0) || (97...122).contains($0) }
        }
        if parts.count == 1, isRandom(parts[0]) { return .unknown }
        guard parts.count == 2, let pid = Int32(parts[0]), pid > 0, isRandom(parts[1]) else { return nil }
        return .process(pid)
    }

    enum TemporaryFileWriter: Equatable {
        case process(Int32)
        case unknown
    }

    /// A temporary file without a process id is taken as abandoned once it is this old: no write
    /// of a weights file takes that long.
    static let abandonedAfterSeconds = 600

    static func removeStaleTemporaryFiles(of path: String) -> [String] {
        let (directory, base) = split(path)
        guard let stream = opendir(directory.isEmpty ? "/" : directory) else { return [] }
        defer { closedir(stream) }
        var removed: [String] = []
        let own = getpid()
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        while let entry = readdir(stream) {
            // Read the name in place: a record can be shorter than `dirent` (it ends after the
            // name's NUL), so copying the whole 256-byte `d_name` could read past the mapping.
            guard let nameOffset = MemoryLayout<dirent>.offset(of: \dirent.d_name) else { continue }
            let name = String(cString: (UnsafeRawPointer(entry) + nameOffset).assumingMemoryBound(to: CChar.self))
            guard let writer = temporaryFileWriter(name, base: base) else { continue }
            let full = (directory.isEmpty ? "" : directory + "/") + name
            var status = stat()
            guard lstat(full, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else { continue }
            switch writer {
            case .process(let pid) where pid == own:
                // This process's own, unless one of its threads is writing it now (a restarted
                // container's process often has the same id as the one that was killed).
                guard !InFlightTemporaries.shared.contains(full) else { continue }
            case .process(let pid):
                // kill(pid, 0) fails with ESRCH only when no such process exists (EPERM: another user's).
                guard kill(pid, 0) != 0 && errno == ESRCH else { continue }
            case .unknown:
                guard Int(now.tv_sec) - Int(status.st_mtim.tv_sec) > abandonedAfterSeconds else { continue }
            }
            if unlink(full) == 0 { removed.append(full) }
        }
        return removed
    }

    static func writeAtomically(_ bytes: [UInt8], to path: String) throws(SafetensorsError) {
        let (directory, base) = split(path)
        _ = removeStaleTemporaryFiles(of: path)
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var entropy = SeededGenerator(seed: UInt64(bitPattern: Int64(now.tv_nsec) ^ Int64(now.tv_sec) << 30)
            ^ UInt64(getpid()) << 40 ^ UInt64(pthread_self()))
        var temporary = ""
        var descriptor: Int32 = -1
        // Retry on a name clash with another writer's temporary file.
        for _ in 0..<8 {
            temporary = (directory.isEmpty ? "" : directory + "/") + ".\(base).\(getpid()).\(String(entropy.next(), radix: 36)).tmp"
            // Registered before it exists, so a cleanup in another thread never takes it for stale.
            InFlightTemporaries.shared.insert(temporary)
            descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            if descriptor >= 0 { break }
            let code = errno
            InFlightTemporaries.shared.remove(temporary)
            errno = code
            if code != EEXIST { break }
        }
        guard descriptor >= 0 else { throw .fileError(path: temporary, message: systemMessage(errno)) }
        defer { InFlightTemporaries.shared.remove(temporary) }
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

/// The temporary files this process is writing now, which a cleanup must leave alone.
final class InFlightTemporaries: @unchecked Sendable {
    static let shared = InFlightTemporaries()
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var paths: Set<String> = []

    private init() {
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    private func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }

    func insert(_ path: String) { locked { _ = paths.insert(path) } }
    func remove(_ path: String) { locked { _ = paths.remove(path) } }
    func contains(_ path: String) -> Bool { locked { paths.contains(path) } }
}
