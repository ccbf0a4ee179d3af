import Foundation

// sinkhorn-bench [filter...]: runs every benchmark whose op name contains one of the filters
// (all when none is given) and prints one JSON object per line.
let filters = Array(CommandLine.arguments.dropFirst())
let all: [Benchmark] = sinkhornBenchmarks + assignmentBenchmarks + networkBenchmarks + jigsawBenchmarks + sortingBenchmarks + classicBenchmarks
for benchmark in all where filters.isEmpty || filters.contains(where: { benchmark.op.contains($0) }) {
    benchmark.run()
}
