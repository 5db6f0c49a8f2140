import Foundation

/// Resolves `--model`: a directory given by the user, or the embedded default model.
enum ModelLocator {
    static let defaultDescription = "the embedded default model"

    static func directory(_ argument: String?) throws -> URL {
        if let path = argument, path != defaultDescription {
            return URL(fileURLWithPath: path)
        }
        throw UsageError("no embedded default model is available yet; pass --model DIR")
    }
}
