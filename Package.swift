// swift-tools-version:6.0
import PackageDescription

let optimise: [SwiftSetting] = []

let package = Package(
    name: "GumbelSinkhorn",
    products: [
        .library(name: "TensorKit", targets: ["TensorKit"]),
        .library(name: "Permutations", targets: ["Permutations"]),
        .library(name: "NeuralNet", targets: ["NeuralNet"]),
        .library(name: "Sorting", targets: ["Sorting"]),
        .library(name: "Jigsaw", targets: ["Jigsaw"]),
        .library(name: "Sockets", targets: ["Sockets"]),
        .library(name: "HTTPCore", targets: ["HTTPCore"]),
        .library(name: "RESP", targets: ["RESP"]),
        .library(name: "PuzzleService", targets: ["PuzzleService"]),
        .executable(name: "jigsaw-server", targets: ["jigsaw-server"]),
        .executable(name: "jigsaw-train", targets: ["jigsaw-train"]),
        .executable(name: "sinkhorn-bench", targets: ["sinkhorn-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CTurboJPEG", pkgConfig: "libturbojpeg", providers: [.apt(["libturbojpeg0-dev"])]),
        .systemLibrary(name: "CWebP", pkgConfig: "libwebp", providers: [.apt(["libwebp-dev"])]),

        .target(name: "TensorKit", dependencies: ["CBLAS"], swiftSettings: optimise),
        .target(name: "Permutations", dependencies: ["TensorKit", "CBLAS"], swiftSettings: optimise),
        .target(name: "NeuralNet", dependencies: ["TensorKit", "CBLAS"], swiftSettings: optimise),
        .target(name: "Sorting", dependencies: ["NeuralNet", "Permutations", "TensorKit"], swiftSettings: optimise),
        .target(name: "GzipCoding", dependencies: ["CZlib"], swiftSettings: optimise),
        .target(name: "Jigsaw", dependencies: ["Sorting", "NeuralNet", "Permutations", "TensorKit", "GzipCoding", "CPNG", "CZlib", "CTurboJPEG", "CWebP"], swiftSettings: optimise),
        .target(name: "Sockets"),
        .target(name: "HTTPCore", dependencies: ["Sockets", "GzipCoding"]),
        .target(name: "RESP", dependencies: ["Sockets"]),
        .target(name: "PuzzleService", dependencies: ["HTTPCore", "RESP", "Jigsaw", "Sorting", "NeuralNet", "Permutations", "TensorKit"]),

        .executableTarget(name: "jigsaw-server", dependencies: [
            "PuzzleService", "HTTPCore", "RESP", "TensorKit",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "jigsaw-train", dependencies: [
            "Jigsaw", "Sorting", "NeuralNet", "Permutations", "TensorKit",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "sinkhorn-bench", dependencies: [
            "Jigsaw", "Sorting", "NeuralNet", "Permutations", "TensorKit",
        ], swiftSettings: optimise),

        .testTarget(name: "TensorKitTests", dependencies: ["TensorKit"]),
        .testTarget(name: "PermutationsTests", dependencies: ["Permutations", "TensorKit"]),
        .testTarget(name: "NeuralNetTests", dependencies: ["NeuralNet", "TensorKit", "TestSupport"]),
        .testTarget(name: "SortingTests", dependencies: ["Sorting", "NeuralNet", "Permutations", "TensorKit", "TestSupport"]),
        .target(name: "TestSupport", dependencies: ["TensorKit", "Sockets"], path: "Tests/TestSupport"),
        .testTarget(name: "JigsawTests", dependencies: ["Jigsaw", "NeuralNet", "Permutations", "TensorKit", "TestSupport"]),
        .testTarget(name: "HTTPCoreTests", dependencies: ["HTTPCore", "GzipCoding", "CZlib", "TestSupport"]),
        .testTarget(name: "RESPTests", dependencies: ["RESP", "Sockets", "TestSupport"]),
        .testTarget(name: "PuzzleServiceTests", dependencies: ["PuzzleService", "HTTPCore", "RESP", "Jigsaw", "NeuralNet", "TensorKit", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
