let networkBenchmarks: [Benchmark] = []
