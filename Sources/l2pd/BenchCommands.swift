import Foundation
import L2PDCommandLine
import L2PDKernels
import L2PDModel

struct BenchForwardCommand: Command {
    static let path = ["bench", "forward"]
    static let summary = "Time full forward passes against the machine's matrix-product speed."
    static let options: [OptionSpec] = [
        .option("model", "DIR", "Checkpoint to time (\"default\": the embedded model; none: a random LLaDA-shaped model)."),
        .option("d-model", "N", "Random model: hidden size.", default: "1024"),
        .option("layers", "N", "Random model: transformer layers.", default: "8"),
        .option("heads", "N", "Random model: attention heads (K/V heads the same).", default: "16"),
        .option("mlp", "N", "Random model: MLP hidden size.", default: "2816"),
        .option("length", "N", "Canvas length (positions per forward pass).", default: "512"),
        .option("reads", "N", "Positions read out per pass.", default: "32"),
        .option("repetitions", "N", "Timed passes; the median is reported.", default: "10"),
        .option("threads", "N", "BLAS threads.", default: "\(ProcessInfo.processInfo.activeProcessorCount)"),
        .option(
            "weights", "native|f32|int8",
            "How the timed stage holds its weights; native also times f32 in the same run; int8 also measures the int8 peak and compares the logits with F32 math (the checkpoint's weights, F32 attention). The random model is written in bf16.",
            default: "native"),
        .flag("json", "Print one JSON object instead of a table."),
    ]

    static func run(_ options: ParsedOptions) throws {
        let threads = try options.positiveInt("threads")!
        let weights = try ModelLocator.weightFormat(options)
        let checkpoint: Checkpoint
        var temporary: URL? = nil
        defer { temporary.map { try? FileManager.default.removeItem(at: $0) } }
        if let model = options.string("model") {
            checkpoint = try Checkpoint(directory: try ModelLocator.directory(model == "default" ? nil : model))
        } else {
            var shape = RandomCheckpointShape()
            shape.dModel = try options.positiveInt("d-model")!
            shape.layers = try options.positiveInt("layers")!
            shape.heads = try options.positiveInt("heads")!
            shape.kvHeads = shape.heads
            shape.mlpHiddenSize = try options.positiveInt("mlp")!
            guard shape.dModel % shape.heads == 0, (shape.dModel / shape.heads) % 2 == 0 else {
                throw UsageError("--heads must divide --d-model into an even head size")
            }
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("l2pd-bench-\(getpid())")
            temporary = directory
            printError(
                String(
                    format: "bench forward: writing a random model (%.0fM parameters) to %@", Double(shape.parameterCount) / 1e6,
                    directory.path))
            try RandomCheckpoint.write(shape, to: directory)
            checkpoint = try Checkpoint(directory: directory)
        }
        let length = try options.positiveInt("length")!
        guard length <= checkpoint.config.maxSequenceLength else {
            throw UsageError("--length \(length) exceeds the model's max_sequence_length \(checkpoint.config.maxSequenceLength)")
        }
        let reads = min(try options.positiveInt("reads")!, length)
        let repetitions = try options.positiveInt("repetitions")!
        let report = BLAS.kernelReport(current: BLAS.coreName, cpuFlags: BLAS.cpuFlags())
        printError("bench forward: \(report.features)")
        if let warning = report.warning { printError("bench forward: \(warning)") }
        let progress = Progress("bench forward", total: 2 + (weights == .native ? 2 : 1) * repetitions)
        let result = try ForwardBenchmark.run(
            checkpoint: checkpoint, length: length, reads: reads, repetitions: repetitions, threads: threads, weights: weights
        ) { done, _ in progress.update(done) }
        if options.has("json") {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(result), as: UTF8.self))
        } else {
            print(
                "canvas \(result.canvasLength) positions, \(result.threads) threads, median of \(result.repetitions), OpenBLAS kernels \(result.blasKernels), element-wise \(result.elementwiseKernels), attention products \(result.attentionProducts)"
            )
            print(String(format: "forward pass            %8.2f ms  %7.1f GFLOP/s", result.forwardSeconds * 1e3, result.forwardGFLOPS))
            print(String(format: "same products alone                %7.1f GFLOP/s", result.gemmSameShapesGFLOPS))
            print(String(format: "2048^3 product (peak)              %7.1f GFLOP/s", result.gemmPeakGFLOPS))
            print(String(format: "ratio forward/peak %.2f   forward/same-shapes %.2f", result.ratio, result.ratioToSameShapes))
            if let peak = result.int8PeakGOPS, let ratio = result.ratioToInt8Peak {
                print(
                    String(format: "int8 2048^3 product (peak)         %7.1f GOP/s   forward/int8-peak %.2f   kernels ", peak, ratio)
                        + (result.productKernels ?? "?"))
            }
            if let mean = result.logitsCosineToF32, let smallest = result.logitsCosineToF32Min,
                let same = result.argmaxAgreementToF32
            {
                print(
                    String(
                        format:
                            "logits against F32 math (checkpoint weights, F32 attention): cosine %.6f (smallest %.6f), same argmax %.1f%%",
                        mean, smallest, same * 100))
            }
            print(
                String(
                    format: "weights %@: %.1f MiB held; K/V cache %.1f MiB per request of %d positions", result.weights,
                    Double(result.weightBytes) / 1_048_576, Double(result.cacheBytesPerRequest) / 1_048_576, result.canvasLength))
            if let f32 = result.f32ForwardSeconds, let ratio = result.nativeToF32 {
                print(String(format: "same model, f32 weights %8.2f ms   native/f32 speed %.2f", f32 * 1e3, ratio))
            }
        }
    }
}

/// `l2pd bench products`: the forward pass's matrix products on each library, side by side.
struct BenchProductsCommand: Command {
    static let path = ["bench", "products"]
    static let summary =
        "Time one layer's matrix products with OpenBLAS sgemm, oneDNN f32 and oneDNN int8 (VNNI where the CPU has it), interleaved."
    static let options: [OptionSpec] = [
        .option("d-model", "N", "Hidden size.", default: "1024"),
        .option("mlp", "N", "MLP hidden size.", default: "2816"),
        .option("rows", "LIST", "Comma-separated row counts (positions per pass; 32 is a cached step).", default: "32,288,512"),
        .option("rounds", "N", "Interleaved rounds; the best and the spread are reported.", default: "5"),
        .option("threads", "N", "Threads of every library.", default: "\(ProcessInfo.processInfo.activeProcessorCount)"),
        .flag("json", "Print one JSON object instead of a table."),
    ]

    struct Row: Codable {
        var rows: Int
        var library: String
        var implementation: String
        var bestMilliseconds: Double
        var worstMilliseconds: Double
        var gops: Double
        var speedupOverSgemm: Double
    }

    static func run(_ options: ParsedOptions) throws {
        let d = try options.positiveInt("d-model")!
        let h = try options.positiveInt("mlp")!
        let threads = try options.positiveInt("threads")!
        let rounds = try options.positiveInt("rounds")!
        let rowCounts = try options.list("rows").map {
            guard let m = Int($0), m > 0, m <= 65_536 else {
                throw UsageError("--rows expects integers from 1 to 65536, got '\($0.prefix(20))'")
            }
            return m
        }
        guard d <= 16_384, h <= 65_536 else { throw UsageError("--d-model at most 16384 and --mlp at most 65536") }
        BLAS.setThreads(threads)
        // One layer's products as the engine runs them: q, k, v, o (d x d), gate and up (h x d), down (d x h).
        let shapes = [(d, d), (d, d), (d, d), (d, d), (h, d), (h, d), (d, h)]
        let weights = shapes.map { seededWeights($0.0 * $0.1) }
        printError("bench products: \(BLAS.kernelReport(current: BLAS.coreName, cpuFlags: BLAS.cpuFlags()).features)")
        printError("bench products: packing \(shapes.count) weight matrices for oneDNN f32 and int8")
        var packed: [PackedMatmul.Precision: [PackedMatmul]] = [:]
        for precision in PackedMatmul.Precision.allCases {
            packed[precision] = try zip(shapes, weights).map { shape, w in
                try w.withUnsafeBufferPointer {
                    try PackedMatmul(weights: $0.baseAddress!, rows: shape.0, columns: shape.1, precision: precision)
                }
            }
        }
        let flops = { (m: Int) in shapes.reduce(0.0) { $0 + 2 * Double(m) * Double($1.0) * Double($1.1) } }
        var table: [Row] = []
        let progress = Progress("bench products", total: rowCounts.count * rounds * 3)
        var done = 0
        for m in rowCounts {
            let x = seededWeights(m * max(d, h))
            var y = [Float](repeating: 0, count: m * max(d, h))
            func sgemm() {
                for (shape, w) in zip(shapes, weights) {
                    BLAS.gemm(transposeB: true, m: m, n: shape.0, k: shape.1, a: x, lda: shape.1, b: w, ldb: shape.1, c: &y, ldc: shape.0)
                }
            }
            func dnnl(_ precision: PackedMatmul.Precision) throws {
                for product in packed[precision]! {
                    try x.withUnsafeBufferPointer { xp in
                        try y.withUnsafeMutableBufferPointer {
                            try product.multiply(xp.baseAddress!, m: m, into: $0.baseAddress!, threads: threads)
                        }
                    }
                }
            }
            // Warm-up: packs, per-m kernels, caches.
            sgemm()
            try dnnl(.f32)
            try dnnl(.int8)
            var times: [String: [Double]] = [:]
            for _ in 0..<rounds {
                for (name, body) in [
                    ("openblas-sgemm", { sgemm() }), ("onednn-f32", { try dnnl(.f32) }), ("onednn-int8", { try dnnl(.int8) }),
                ]
                    as [(String, () throws -> Void)]
                {
                    let start = DispatchTime.now().uptimeNanoseconds
                    try body()
                    times[name, default: []].append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
                    done += 1
                    progress.update(done)
                }
            }
            let sgemmBest = times["openblas-sgemm"]!.min()!
            for (name, implementation) in [
                ("openblas-sgemm", "OpenBLAS \(BLAS.coreName)"), ("onednn-f32", packed[.f32]![4].implementation),
                ("onednn-int8", packed[.int8]![4].implementation),
            ] {
                let t = times[name]!
                table.append(
                    Row(
                        rows: m, library: name, implementation: implementation, bestMilliseconds: t.min()!, worstMilliseconds: t.max()!,
                        gops: flops(m) / (t.min()! * 1e6), speedupOverSgemm: sgemmBest / t.min()!))
            }
        }
        if options.has("json") {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(["rows": table]), as: UTF8.self))
            return
        }
        print("one layer (d_model \(d), MLP \(h)): 7 products, \(threads) threads, best of \(rounds) interleaved rounds")
        print("rows  library          best ms   worst ms    GOP/s   x sgemm  implementation")
        for r in table {
            print(
                String(format: "%4d  ", r.rows) + r.library.padding(toLength: 15, withPad: " ", startingAt: 0)
                    + String(
                        format: " %8.3f  %9.3f  %7.1f  %7.2fx  ", r.bestMilliseconds, r.worstMilliseconds, r.gops, r.speedupOverSgemm)
                    + r.implementation)
        }
    }

    static func seededWeights(_ count: Int) -> [Float] {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        return (0..<count).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return (Float(state >> 40) / Float(1 << 24) - 0.5) * 0.1
        }
    }
}
