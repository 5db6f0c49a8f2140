import Foundation
import L2PDModel
import L2PDTokenizer

/// A loaded model directory: checkpoint plus tokenizer.
public struct ModelBundle: Sendable {
    public let checkpoint: Checkpoint
    public let tokenizer: Tokenizer

    public init(directory: URL) throws {
        checkpoint = try Checkpoint(directory: directory)
        let tokenizerURL = directory.appendingPathComponent("tokenizer.json")
        guard FileManager.default.fileExists(atPath: tokenizerURL.path) else {
            throw CheckpointError.missingFile(path: tokenizerURL.path)
        }
        tokenizer = try Tokenizer(contentsOf: tokenizerURL)
    }
}
