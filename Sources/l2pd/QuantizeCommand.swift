import Foundation
import L2PDCommandLine
import L2PDModel

/// `l2pd quantize`: an int8 copy of a checkpoint, for `--weights int8` without an F32 pass at load.
struct QuantizeCommand: Command {
    static let path = ["quantize"]
    static let summary = "Write an int8 copy of a checkpoint (projections per output row with scales; everything else as is)."
    static let options: [OptionSpec] = [
        .option("model", "DIR", "Checkpoint to quantize (Hugging Face LLaDA layout).", default: ModelLocator.defaultDescription),
        .option("out", "DIR", "Output directory (created; must be empty if it exists)."),
    ]

    static func run(_ o: ParsedOptions) async throws {
        guard let out = o.string("out") else { throw UsageError("--out DIR is required") }
        let checkpoint = try Checkpoint(directory: try ModelLocator.directory(o.string("model")))
        let output = URL(fileURLWithPath: out)
        guard output.standardizedFileURL.path != checkpoint.directory.standardizedFileURL.path else {
            throw UsageError("--out must differ from the model directory")
        }
        let start = Date()
        let progress = Progress("quantize", total: checkpoint.tensorNames.count)
        let bytes = try CheckpointQuantizer.write(checkpoint, to: output) { done, _ in progress.update(done) }
        printError(
            String(
                format: "quantize: wrote %@ (%.1f MiB of tensors) in %.1f s; load it with --weights int8", output.path,
                Double(bytes) / 1_048_576, Date().timeIntervalSince(start)))
    }
}
