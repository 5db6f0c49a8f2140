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
            "weights", "native|f32",
            "How the timed stage holds its weights; native also times f32 in the same run. The random model is written in bf16.",
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
                "canvas \(result.canvasLength) positions, \(result.threads) threads, median of \(result.repetitions), OpenBLAS kernels \(result.blasKernels)"
            )
            print(String(format: "forward pass            %8.2f ms  %7.1f GFLOP/s", result.forwardSeconds * 1e3, result.forwardGFLOPS))
            print(String(format: "same products alone                %7.1f GFLOP/s", result.gemmSameShapesGFLOPS))
            print(String(format: "2048^3 product (peak)              %7.1f GFLOP/s", result.gemmPeakGFLOPS))
            print(String(format: "ratio forward/peak %.2f   forward/same-shapes %.2f", result.ratio, result.ratioToSameShapes))
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
