import Foundation
import L2PDKernels
import L2PDModel

struct BenchForwardCommand: Command {
    static let path = ["bench", "forward"]
    static let summary = "Time full forward passes against the machine's matrix-product speed."
    static let options: [OptionSpec] = [
        .option("model", "DIR", "Checkpoint directory (Hugging Face LLaDA layout).", default: ModelLocator.defaultDescription),
        .option("length", "N", "Canvas length (positions per forward pass).", default: "320"),
        .option("reads", "N", "Positions read out per pass.", default: "32"),
        .option("repetitions", "N", "Timed passes; the median is reported.", default: "10"),
        .option("threads", "N", "BLAS threads.", default: "\(ProcessInfo.processInfo.activeProcessorCount)"),
        .flag("json", "Print one JSON object instead of a table."),
    ]

    static func run(_ options: ParsedOptions) throws {
        let threads = try options.positiveInt("threads")!
        let checkpoint = try Checkpoint(directory: try ModelLocator.directory(options.string("model")))
        let length = try options.positiveInt("length")!
        guard length <= checkpoint.config.maxSequenceLength else {
            throw UsageError("--length \(length) exceeds the model's max_sequence_length \(checkpoint.config.maxSequenceLength)")
        }
        let reads = min(try options.positiveInt("reads")!, length)
        let result = try ForwardBenchmark.run(
            checkpoint: checkpoint, length: length, reads: reads, repetitions: try options.positiveInt("repetitions")!, threads: threads)
        if options.has("json") {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(result), as: UTF8.self))
        } else {
            print("canvas \(result.canvasLength) positions, \(result.threads) threads, median of \(result.repetitions)")
            print(String(format: "forward pass            %8.2f ms  %7.1f GFLOP/s", result.forwardSeconds * 1e3, result.forwardGFLOPS))
            print(String(format: "same products alone                %7.1f GFLOP/s", result.gemmSameShapesGFLOPS))
            print(String(format: "1024^3 product (peak)              %7.1f GFLOP/s", result.gemmPeakGFLOPS))
            print(String(format: "ratio forward/peak %.2f   forward/same-shapes %.2f", result.ratio, result.ratioToSameShapes))
        }
    }
}
