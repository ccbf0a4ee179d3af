import Foundation
import Glibc
import HTTPCore
import Jigsaw
import NeuralNet
import PuzzleService
import TensorKit
import TestSupport

/// Paths of the repository's fixtures.
enum Fixtures {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let torchModel = repository.appendingPathComponent("Tests/Fixtures/torch/tutorial-2x2-random.safetensors").path
    static let mnistImages = repository.appendingPathComponent("Tests/Fixtures/mnist-test-300-images-idx3-ubyte.gz").path
    static let mnistLabels = repository.appendingPathComponent("Tests/Fixtures/mnist-test-300-labels-idx1-ubyte.gz").path
    static let samples = repository.appendingPathComponent("Models/samples").path
    static let trainedModel = repository.appendingPathComponent("Models/mnist-2x2.safetensors").path
}

/// One HTTP exchange over a fresh connection (`Connection: close`), read to the end, with a
/// receive timeout so a test never hangs.
struct Reply {
    var status: Int
    var headers: [String: String]
    var body: [UInt8]

    var text: String { String(decoding: body, as: UTF8.self) }

    /// The body parsed as a JSON object (empty when it is not one).
    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:]
    }

    /// The `error.code` of a JSON error body.
    var errorCode: String? {
        (json["error"] as? [String: Any])?["code"] as? String
    }
}

func request(_ method: String, _ target: String, port: Int, headers: [String: String] = [:], body: [UInt8] = []) throws -> Reply {
    let client = try RawClient(port: port, timeout: 20)
    var head = "\(method) \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    for (name, value) in headers { head += "\(name): \(value)\r\n" }
    if !body.isEmpty || method == "POST" { head += "Content-Length: \(body.count)\r\n" }
    client.send(Array((head + "\r\n").utf8) + body)
    let response = try client.readResponse(forHead: method == "HEAD")
    return Reply(status: response.status, headers: response.headers, body: response.body)
}

func get(_ target: String, port: Int, headers: [String: String] = [:]) throws -> Reply {
    try request("GET", target, port: port, headers: headers)
}

func postJSON(_ target: String, port: Int, _ object: Any) throws -> Reply {
    let data = try JSONSerialization.data(withJSONObject: object)
    return try request("POST", target, port: port, headers: ["Content-Type": "application/json"], body: [UInt8](data))
}

/// Runs `body` against a service started on a free port, then shuts it down.
func withService<Result>(
    models: [ServiceModel], defaultModel: String? = nil, samples: SampleSet = SampleSet(datasets: [:]),
    configuration: ServiceConfiguration = ServiceConfiguration(storeCapacity: 64, seed: 1),
    limits: HTTPLimits = HTTPLimits(), publicDirectory: String? = nil, responsePolicy: HTTPResponsePolicy = HTTPResponsePolicy(),
    assembler: DigitAssembler? = nil,
    server adjust: (inout HTTPServerConfiguration) -> Void = { _ in },
    _ body: (Int, JigsawService) throws -> Result
) throws -> Result {
    let service = JigsawService(registry: try ModelRegistry(models: models, defaultModel: defaultModel),
                                samples: samples, configuration: configuration, publicDirectory: publicDirectory,
                                assembler: assembler)
    var serverConfiguration = HTTPServerConfiguration(
        host: "127.0.0.1", port: 0, limits: limits, headerTimeout: .seconds(10), bodyTimeout: .seconds(10),
        idleTimeout: .seconds(10), lingerTimeout: .milliseconds(200), shutdownTimeout: .seconds(10), accessLog: nil,
        responsePolicy: responsePolicy)
    adjust(&serverConfiguration)
    let server = service.makeServer(configuration: serverConfiguration)
    try server.start()
    defer { server.shutdown(graceful: false) }
    return try body(server.port, service)
}

/// A jigsaw model whose scores are known in closed form: one 1×1 convolution channel with weight
/// 1, identity BatchNorm and normalisation, and `g_2` row `j` equal to `(j + 1)/s²`. A piece of
/// constant intensity `u` then scores `X[i, j] = u_i · (j + 1)` (up to BatchNorm's ε), a rank-one
/// matrix whose maximising matching pairs the k-th darkest piece with cell k (rearrangement
/// inequality; strict when the intensities are distinct).
func intensityModel(grid: Int, name: String? = nil) throws -> ServiceModel {
    let imageSize = grid == 2 ? 28 : 27
    let pieceSide = imageSize / grid, side = pieceSide / 2, n = grid * grid
    let metadata = [
        "architecture": "jigsaw-cnn", "grid": String(grid), "image_size": String(imageSize), "channels": "1",
        "hidden_channels": "1", "kernel_size": "1", "normalization_mean": "0", "normalization_std": "1",
        "eval.dataset": "synthetic", "eval.kendall_tau": "1.0",
    ]
    var output = [Float](repeating: 0, count: n * side * side)
    for j in 0..<n {
        for k in 0..<(side * side) { output[j * side * side + k] = Float(j + 1) / Float(side * side) }
    }
    let tensors: [String: Tensor] = [
        "g_1.0.weight": Tensor(shape: [1, 1, 1, 1], storage: [1]), "g_1.0.bias": Tensor(shape: [1], storage: [0]),
        "g_1.3.weight": Tensor(shape: [1], storage: [1]), "g_1.3.bias": Tensor(shape: [1], storage: [0]),
        "g_1.3.running_mean": Tensor(shape: [1], storage: [0]), "g_1.3.running_var": Tensor(shape: [1], storage: [1]),
        "g_2.weight": Tensor(shape: [n, side * side], storage: output),
    ]
    return try ServiceModel(name: name ?? "intensity-\(grid)x\(grid)", metadata: metadata, tensors: tensors, instances: 2)
}

/// The intensity of cell `j` of the synthetic puzzle: distinct, increasing, above zero.
func cellIntensity(_ cell: Int) -> UInt8 { UInt8(30 + 25 * cell) }

/// A synthetic puzzle `width × height` whose scrambled slot `s` is filled with the intensity of
/// cell `permutation[s]` (cells from a centre-crop to a multiple of `grid`, as documented; the
/// cropped border is black).
func scrambledImage(grid: Int, permutation: [Int], width: Int, height: Int) -> Image {
    var image = Image(width: width, height: height, channels: 1, repeating: 0)
    let cellWidth = width / grid, cellHeight = height / grid
    let left = (width - grid * cellWidth) / 2, top = (height - grid * cellHeight) / 2
    for slot in 0..<(grid * grid) {
        for y in 0..<cellHeight {
            for x in 0..<cellWidth {
                let px = left + (slot % grid) * cellWidth + x, py = top + (slot / grid) * cellHeight + y
                image.pixels[py * width + px] = cellIntensity(permutation[slot])
            }
        }
    }
    return image
}

/// A constant gray piece `[H][W]` of numbers in [0, 1].
func constantPiece(_ value: UInt8, side: Int) -> [[Double]] {
    Array(repeating: Array(repeating: Double(value) / 255, count: side), count: side)
}

/// A sorting model with `X[i, j] = x_i · (j + 1)` for positive `x`: one hidden unit computing
/// `relu(x)`, output weights `j + 1`, zero biases; ascending order maximises the matching.
func scalingSortModel(count: Int) throws -> ServiceModel {
    try ServiceModel(name: "sort-\(count)", metadata: ["architecture": "sorting-mlp", "count": String(count), "hidden_units": "1"], tensors: [
        "fc1.weight": Tensor(shape: [1, 1], storage: [1]), "fc1.bias": Tensor(shape: [1], storage: [0]),
        "fc2.weight": Tensor(shape: [count, 1], storage: (0..<count).map { Float($0 + 1) }),
        "fc2.bias": Tensor(shape: [count], storage: [Float](repeating: 0, count: count)),
    ])
}

/// The mean absolute difference between two images of the same size.
func meanAbsoluteDifference(_ a: Image, _ b: Image) -> Double {
    precondition(a.pixels.count == b.pixels.count, "images differ in size")
    return Double(zip(a.pixels, b.pixels).reduce(0) { $0 + abs(Int($1.0) - Int($1.1)) }) / Double(max(a.pixels.count, 1))
}

/// Holds one slot of `gate` on another thread until `release` is signalled; returns once held.
func holdWorkSlot(_ gate: WorkGate, until release: DispatchSemaphore, done: DispatchGroup) {
    let held = DispatchSemaphore(value: 0)
    done.enter()
    Thread.detachNewThread {
        _ = try? gate.run {
            held.signal()
            release.wait()
        }
        done.leave()
    }
    held.wait()
}
