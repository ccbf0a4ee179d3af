import Foundation
import Jigsaw
import Testing
import TensorKit

/// The repository's `Tests/Fixtures` directory, found from this file's path.
let fixturesDirectory: String = {
    let tests = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    return tests.appendingPathComponent("Fixtures").path
}()

/// The MNIST folder holding the full test split: `$MNIST_DIR`, else `../shared/data/mnist` beside
/// the package when it is there, else `nil` (the shipped 300-image fixture stands in).
let fullMNISTDirectory: String? = {
    if let directory = ProcessInfo.processInfo.environment["MNIST_DIR"], !directory.isEmpty { return directory }
    let root = URL(fileURLWithPath: fixturesDirectory).deletingLastPathComponent().deletingLastPathComponent()
    let shared = root.deletingLastPathComponent().appendingPathComponent("shared/data/mnist").standardizedFileURL.path
    let present = FileManager.default.fileExists(atPath: shared + "/t10k-images-idx3-ubyte.gz")
    return present ? shared : nil
}()

/// Writes a file, recording an issue when that fails.
func writeFile(_ path: String, _ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)), sourceLocation: sourceLocation)
}

/// A fresh temporary directory, removed by the caller.
func temporaryDirectory(_ name: String) throws -> String {
    let path = FileManager.default.temporaryDirectory
        .appendingPathComponent("\(name)-\(getpid())-\(UInt64.random(in: 0...UInt64.max))").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

@Suite struct GzipTests {
    @Test(arguments: [0 as UInt64, 1, 2])
    func roundTripsAndConcatenatesMembers(seed: UInt64) throws {
        var rng = SeededGenerator(seed: seed)
        let first = (0..<(1 + rng.nextInt(below: 200_000))).map { _ in UInt8(rng.nextInt(below: 4)) }
        let second = (0..<rng.nextInt(below: 1000)).map { _ in UInt8(rng.nextInt(below: 256)) }
        #expect(try Gzip.decompress(Gzip.compress(first)) == first, "seed \(seed)")
        #expect(try Gzip.decompress(Gzip.compress(first) + Gzip.compress(second, level: 1)) == first + second, "seed \(seed)")
        #expect(try Gzip.decompress(Gzip.compress(second) + [0, 0, 0]) == second, "seed \(seed)")
    }

    @Test func compressionIsDeterministicAndStandard() {
        // RFC 1952 §2.3: magic 1f 8b, method 8, no flags, MTIME 0.
        let bytes = Gzip.compress(Array("hello".utf8))
        #expect(Array(bytes.prefix(8)) == [0x1F, 0x8B, 8, 0, 0, 0, 0, 0])
        #expect(bytes == Gzip.compress(Array("hello".utf8)))
    }

    static let malformed: [(String, [UInt8], GzipError)] = {
        let good = Gzip.compress(Array(repeating: 7, count: 1000) + Array(0..<200))
        var badCRC = good
        badCRC[good.count - 6] ^= 1 // inside the CRC-32 trailer
        var badHeader = good
        badHeader[2] = 7 // compression method other than deflate
        return [
            ("empty", [], .notGzip),
            ("not gzip", [0x78, 0x9C, 1, 2], .notGzip),
            ("truncated", Array(good.prefix(good.count - 5)), .truncated),
            ("header only", Array(good.prefix(10)), .truncated),
            ("bad CRC", badCRC, .corrupt("incorrect data check")),
            ("bad method", badHeader, .corrupt("unknown compression method")),
            ("trailing garbage", good + [1, 2, 3], .trailingData(offset: good.count)),
        ]
    }()

    @Test(arguments: malformed)
    func rejectsMalformedStreams(name: String, bytes: [UInt8], expected: GzipError) {
        #expect(throws: expected, "\(name)") { try Gzip.decompress(bytes) }
    }

    @Test func enforcesTheOutputLimit() throws {
        let data = [UInt8](repeating: 1, count: 100_000)
        #expect(throws: GzipError.outputTooLarge(limit: 99_999)) { try Gzip.decompress(Gzip.compress(data), maximumOutput: 99_999) }
        #expect(try Gzip.decompress(Gzip.compress(data), maximumOutput: 100_000) == data)
    }
}

@Suite struct IDXTests {
    /// IDX bytes written out by hand: magic 00 00 08 02, dimensions 2 and 3, six bytes.
    static let matrix: [UInt8] = [0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6]

    @Test func parsesRawAndGzipped() throws {
        let raw = try IDXFile(bytes: Self.matrix, file: "m")
        #expect(raw.dataType == .uint8 && raw.dimensions == [2, 3] && raw.payload == [1, 2, 3, 4, 5, 6])
        #expect(try IDXFile(bytes: Gzip.compress(Self.matrix), file: "m") == raw)
        #expect(raw.encoded() == Self.matrix)
    }

    static let malformed: [(String, [UInt8], IDXError)] = [
        ("empty", [], .truncatedHeader(file: "f.idx", byteCount: 0)),
        ("bad magic", [1, 0, 8, 1, 0, 0, 0, 0], .badMagic(file: "f.idx", magic: 0x0100_0801)),
        ("unknown type", [0, 0, 0x0A, 1, 0, 0, 0, 0], .unsupportedDataType(file: "f.idx", code: 0x0A)),
        ("dimensions cut short", [0, 0, 8, 3, 0, 0, 0, 1, 0, 0], .truncatedHeader(file: "f.idx", byteCount: 10)),
        ("data too short", Array(matrix.dropLast()), .lengthMismatch(file: "f.idx", expected: 6, found: 5)),
        ("data too long", matrix + [9], .lengthMismatch(file: "f.idx", expected: 6, found: 7)),
        ("int32 length", [0, 0, 0x0C, 1, 0, 0, 0, 2, 0, 0, 0, 1], .lengthMismatch(file: "f.idx", expected: 8, found: 4)),
        ("corrupt gzip", Array(Gzip.compress(matrix).dropLast(3)), .gzip(file: "f.idx", .truncated)),
    ]

    @Test(arguments: malformed)
    func rejectsMalformedFiles(name: String, bytes: [UInt8], expected: IDXError) {
        #expect(throws: expected, "\(name)") { try IDXFile(bytes: bytes, file: "f.idx") }
    }

    @Test func missingFileIsNamed() {
        #expect(throws: IDXError.unreadable(file: "/nonexistent/x-idx1-ubyte", message: "No such file or directory")) {
            try IDXFile(contentsOfFile: "/nonexistent/x-idx1-ubyte")
        }
    }
}

@Suite struct MNISTTests {
    @Test func loadsTheFixture() throws {
        let files = try ImageDataset.mnistFiles(directory: fixturesDirectory, split: .test)
        #expect(files.images.hasSuffix("/mnist-test-300-images-idx3-ubyte.gz"))
        #expect(files.labels.hasSuffix("/mnist-test-300-labels-idx1-ubyte.gz"))
        let data = try ImageDataset.mnist(directory: fixturesDirectory, split: .test)
        #expect(data.count == 300 && data.channels == 1 && data.height == 28 && data.width == 28)
        // Reference figures computed from the original t10k files with Python's gzip module.
        #expect(Array(data.labels?.prefix(20) ?? []) == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9, 0, 6, 9, 0, 1, 5, 9, 7, 3, 4])
        #expect(data.pixels[0..<784].reduce(0) { $0 + Int($1) } == 18454)
        #expect(data.pixels.reduce(0) { $0 + Int($1) } == 7_198_101)
        let limited = try ImageDataset.mnist(directory: fixturesDirectory, split: .test, limit: 5)
        #expect(limited.count == 5 && limited.pixels == Array(data.pixels[0..<(5 * 784)]))
        let tensor = limited.tensor(1..<3)
        #expect(tensor.shape == [2, 1, 28, 28])
        #expect(tensor.storage[300] == Float(data.pixels[784 + 300]) / 255)
        #expect(throws: DatasetError.filesNotFound(directory: fixturesDirectory, split: .train)) {
            try ImageDataset.mnist(directory: fixturesDirectory, split: .train)
        }
    }

    @Test func findsEitherNamingAndRefusesAmbiguity() throws {
        let directory = try temporaryDirectory("mnist-names")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let images = IDXFile(dataType: .uint8, dimensions: [2, 2, 2], payload: [0, 1, 2, 3, 4, 5, 6, 7]).encoded()
        let labels = IDXFile(dataType: .uint8, dimensions: [2], payload: [3, 9]).encoded()
        writeFile(directory + "/t10k-images.idx3-ubyte", images)
        writeFile(directory + "/t10k-labels.idx1-ubyte", Gzip.compress(labels))
        let data = try ImageDataset.mnist(directory: directory, split: .test)
        #expect(data.labels == [3, 9] && data.pixels == [0, 1, 2, 3, 4, 5, 6, 7])
        // A gzipped copy of the same file is not a second candidate; the raw one wins.
        writeFile(directory + "/t10k-images.idx3-ubyte.gz", Gzip.compress(images))
        #expect(try ImageDataset.mnistFiles(directory: directory, split: .test).images == directory + "/t10k-images.idx3-ubyte")
        writeFile(directory + "/test-images-idx3-ubyte", images)
        #expect(throws: DatasetError.ambiguousFiles(directory: directory, candidates: ["t10k-images.idx3-ubyte", "test-images-idx3-ubyte"])) {
            try ImageDataset.mnistFiles(directory: directory, split: .test)
        }
        writeFile(directory + "/train-images-idx3-ubyte", images)
        #expect(throws: DatasetError.labelsNotFound(imagesFile: directory + "/train-images-idx3-ubyte",
                                                    tried: ["train-labels-idx1-ubyte", "train-labels-idx1-ubyte.gz"])) {
            try ImageDataset.mnistFiles(directory: directory, split: .train)
        }
    }

    @Test func validatesTheLayoutAgainstItsRole() throws {
        let directory = try temporaryDirectory("mnist-layout")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        func write(_ name: String, _ file: IDXFile) -> String {
            writeFile(directory + "/" + name, file.encoded())
            return directory + "/" + name
        }
        let images = write("i", IDXFile(dataType: .uint8, dimensions: [2, 1, 1], payload: [0, 1]))
        let flat = write("flat", IDXFile(dataType: .uint8, dimensions: [2], payload: [0, 1]))
        let three = write("three", IDXFile(dataType: .uint8, dimensions: [3], payload: [0, 1, 2]))
        let big = write("big", IDXFile(dataType: .uint8, dimensions: [2], payload: [0, 10]))
        #expect(throws: DatasetError.unexpectedLayout(file: flat, dataType: 8, dimensions: [2], expected: "unsigned bytes [N, rows, columns]")) {
            try ImageDataset.mnist(imagesFile: flat, labelsFile: flat)
        }
        #expect(throws: DatasetError.countMismatch(imagesFile: images, images: 2, labelsFile: three, labels: 3)) {
            try ImageDataset.mnist(imagesFile: images, labelsFile: three)
        }
        #expect(throws: DatasetError.labelOutOfRange(file: big, index: 1, label: 10)) {
            try ImageDataset.mnist(imagesFile: images, labelsFile: big)
        }
    }

    /// The full test split from `fullMNISTDirectory`, or the shipped fixture where there is none.
    @Test func loadsTheFullTestSet() throws {
        let data = try ImageDataset.mnist(directory: fullMNISTDirectory ?? fixturesDirectory, split: .test)
        #expect(data.count == (fullMNISTDirectory == nil ? 300 : 10_000))
        let fixture = try ImageDataset.mnist(directory: fixturesDirectory, split: .test)
        #expect(Array(data.pixels.prefix(300 * 784)) == fixture.pixels)
    }
}

@Suite struct ImageFolderTests {
    @Test func loadsConvertsAndResizesPNGs() throws {
        let directory = try temporaryDirectory("image-folder")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // b.png: 4×2 RGB, left half red, right half blue; a.PNG: 2×2 gray; c.txt is ignored.
        let rgb = Image(width: 4, height: 2, channels: 3, pixels: [255, 0, 0, 255, 0, 0, 0, 0, 255, 0, 0, 255,
                                                                   255, 0, 0, 255, 0, 0, 0, 0, 255, 0, 0, 255])
        let gray = Image(width: 2, height: 2, channels: 1, pixels: [10, 20, 30, 40])
        writeFile(directory + "/b.png", try PNG.encode(rgb))
        writeFile(directory + "/a.PNG", try PNG.encode(gray))
        writeFile(directory + "/c.txt", Array("x".utf8))
        let data = try ImageDataset.imageFolder(directory: directory, channels: 3, height: 2, width: 2)
        #expect(data.sources == ["a.PNG", "b.png"])
        #expect(data.count == 2)
        // a: gray replicated into three planes.
        #expect(Array(data.pixels[0..<12]) == [10, 20, 30, 40, 10, 20, 30, 40, 10, 20, 30, 40])
        // b: cover-resize keeps 4×2, the center crop takes columns 1 and 2 (one red, one blue).
        #expect(Array(data.pixels[12..<24]) == [255, 0, 255, 0, 0, 0, 0, 0, 0, 255, 0, 255])
        let grayData = try ImageDataset.imageFolder(directory: directory, channels: 1, height: 2, width: 2, limit: 1)
        #expect(grayData.count == 1 && grayData.pixels == [10, 20, 30, 40])
    }

    @Test func namesTheBrokenFile() throws {
        let directory = try temporaryDirectory("image-folder-bad")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(throws: DatasetError.noImages(directory: directory)) {
            try ImageDataset.imageFolder(directory: directory, channels: 1, height: 2, width: 2)
        }
        writeFile(directory + "/x.png", Array("not a png".utf8))
        #expect(throws: DatasetError.image(file: directory + "/x.png", .notPNG)) {
            try ImageDataset.imageFolder(directory: directory, channels: 1, height: 2, width: 2)
        }
    }
}

@Suite struct ShiftedDatasetTests {
    /// Two 3×3 gray images shifted one column right and one row down, and back: written out by
    /// hand, the uncovered row and column black.
    @Test func shiftMovesEveryPixelAndFillsBlack() {
        let pixels: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 20, 30, 40, 50, 60, 70, 80, 90]
        let dataset = ImageDataset(count: 2, channels: 1, height: 3, width: 3, pixels: pixels)
        #expect(dataset.shifted(x: 1, y: 1).pixels == [0, 0, 0, 0, 1, 2, 0, 4, 5, 0, 0, 0, 0, 10, 20, 0, 40, 50])
        #expect(dataset.shifted(x: -1, y: 0).pixels == [2, 3, 0, 5, 6, 0, 8, 9, 0, 20, 30, 0, 50, 60, 0, 80, 90, 0])
        #expect(dataset.shifted(x: 0, y: 0) == dataset)
        #expect(dataset.shifted(x: 3, y: 0).pixels == [UInt8](repeating: 0, count: 18))
    }
}
