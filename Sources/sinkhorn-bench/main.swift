import Foundation
import TensorKit

// sinkhorn-bench [filter...]: runs every benchmark whose op name contains one of the filters
// (all when none is given) and prints one JSON object per line.
// --version prints the package version.
if CommandLine.arguments.dropFirst().contains("--version") {
    print(PackageVersion.string)
    exit(0)
}
let filters = Array(CommandLine.arguments.dropFirst())
if let flag = filters.first(where: { $0.hasPrefix("-") }) {
    FileHandle.standardError.write(Data("Error: Unknown option '\(flag)'\nUsage: sinkhorn-bench [--version] [filter...]\n".utf8))
    exit(64)
}
let all: [Benchmark] = sinkhornBenchmarks + assignmentBenchmarks + networkBenchmarks + jigsawBenchmarks + sortingBenchmarks
    + imageBenchmarks + classicBenchmarks + photoBenchmarks + barycenterBenchmarks
for benchmark in all where filters.isEmpty || filters.contains(where: { benchmark.op.contains($0) }) {
    benchmark.run()
}
