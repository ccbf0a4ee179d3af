let sinkhornBenchmarks: [Benchmark] = []
