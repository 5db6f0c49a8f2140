import Foundation
import L2PDCommandLine
import L2PDDefaultModel
import L2PDFilter
import L2PDModel

/// Resolves `--model` and `--filter`: paths given by the user, or what the package ships.
enum ModelLocator {
    static let defaultDescription = "the embedded default model"
    static let defaultFilterDescription = "the embedded filter"

    static func directory(_ argument: String?) throws -> URL {
        if let path = argument, path != defaultDescription {
            return URL(fileURLWithPath: path)
        }
        guard let url = DefaultModel.directory else {
            throw UsageError("the embedded default model is missing from this build; pass --model DIR")
        }
        return url
    }

    /// `--weights`: how a stage holds its weights in memory.
    static let weightsSpec = OptionSpec.option(
        "weights", "native|f32|int8",
        "How weights are held: native keeps the checkpoint's dtype (bf16 stays 2 bytes, memory-mapped), f32 converts at load, int8 quantizes at load (per output row) for oneDNN's int8 products (VNNI where the CPU has it).",
        default: "native")

    static func weightFormat(_ o: ParsedOptions) throws -> WeightFormat {
        let text = o.string("weights") ?? "native"
        guard let format = WeightFormat(rawValue: text) else {
            throw UsageError("unknown --weights '\(text.prefix(32))' (known: native, f32, int8)")
        }
        return format
    }

    /// The filter to use, or nil when none was given and none ships (learn2pd then refuses).
    static func filter(_ argument: String?) throws -> FilterNetwork? {
        if let path = argument, path != defaultFilterDescription {
            guard FileManager.default.fileExists(atPath: path) else { throw UsageError("filter file not found: \(path)") }
            return try FilterNetwork(contentsOf: URL(fileURLWithPath: path))
        }
        return try DefaultModel.filter.map { try FilterNetwork(contentsOf: $0) }
    }
}
