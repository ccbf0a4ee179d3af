let assignmentBenchmarks: [Benchmark] = []
