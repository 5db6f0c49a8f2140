import Foundation
import L2PDStageIO
import Testing

@testable import L2PDModel

/// A scratch copy of a fixture checkpoint that a test may damage.
final class ScratchCheckpoint {
    let url: URL

    init(copying name: String = "tiny-llada") throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("l2pd-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: Fixtures.directory(name), to: url)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    var weights: URL { url.appendingPathComponent("model.safetensors") }

    /// Rewrites the safetensors header through `edit`, keeping the data bytes.
    func editHeader(_ edit: (inout [String: Any]) -> Void) throws {
        let bytes = try Data(contentsOf: weights)
        let length = Int(bytes.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        var header = try JSONSerialization.jsonObject(with: bytes.subdata(in: 8..<(8 + length))) as! [String: Any]
        edit(&header)
        var json = try JSONSerialization.data(withJSONObject: header)
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        out.append(bytes.subdata(in: (8 + length)..<bytes.count))
        try out.write(to: weights)
    }

    func editConfig(_ edit: (inout [String: Any]) -> Void) throws {
        let configURL = url.appendingPathComponent("config.json")
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as! [String: Any]
        edit(&config)
        try JSONSerialization.data(withJSONObject: config).write(to: configURL)
    }

    func loadWholeModel() throws {
        let checkpoint = try Checkpoint(directory: url)
        _ = try StageWeights(checkpoint: checkpoint, layers: 0..<checkpoint.config.layers)
    }
}

/// Runs `body`, expecting a `CheckpointError`, and returns its message.
func checkpointErrorMessage(_ body: () throws -> Void) -> String {
    do {
        try body()
        Issue.record("expected a checkpoint error")
        return ""
    } catch let error as CheckpointError {
        let message = error.description
        #expect(!message.contains("\n"))
        return message
    } catch {
        Issue.record("unexpected error type: \(error)")
        return ""
    }
}

@Test func missingWeightsFileIsNamed() throws {
    let scratch = try ScratchCheckpoint()
    try FileManager.default.removeItem(at: scratch.weights)
    let message = checkpointErrorMessage { try scratch.loadWholeModel() }
    #expect(message.contains("model.safetensors") && message.contains("not found"))
}

@Test func missingDirectoryIsNamed() {
    let message = checkpointErrorMessage { _ = try Checkpoint(directory: URL(fileURLWithPath: "/nonexistent/llada")) }
    #expect(message == "/nonexistent/llada: file not found")
}

@Test func truncatedSafetensorsNamesFileAndTensor() throws {
    let scratch = try ScratchCheckpoint()
    let bytes = try Data(contentsOf: scratch.weights)
    try bytes.prefix(bytes.count - 1000).write(to: scratch.weights)
    let message = checkpointErrorMessage { try scratch.loadWholeModel() }
    #expect(message.contains("model.safetensors") && message.contains("truncated"))
}

@Test func headerLongerThanFileIsRejected() throws {
    let scratch = try ScratchCheckpoint()
    var bytes = try Data(contentsOf: scratch.weights)
    bytes.replaceSubrange(0..<8, with: withUnsafeBytes(of: UInt64(1 << 40).littleEndian) { Data($0) })
    try bytes.write(to: scratch.weights)
    let message = checkpointErrorMessage { try scratch.loadWholeModel() }
    #expect(message.contains("invalid safetensors header"))
}

@Test func wrongShapeNamesTensorAndBothShapes() throws {
    let scratch = try ScratchCheckpoint()
    try scratch.editHeader { header in
        var entry = header["model.transformer.blocks.1.q_proj.weight"] as! [String: Any]
        entry["shape"] = [32, 128]
        header["model.transformer.blocks.1.q_proj.weight"] = entry
    }
    let message = checkpointErrorMessage { try scratch.loadWholeModel() }
    #expect(message.contains("blocks.1.q_proj.weight") && message.contains("[32, 128]") && message.contains("[64, 64]"))
}

@Test func unknownDTypeIsNamed() throws {
    let scratch = try ScratchCheckpoint()
    try scratch.editHeader { header in
        var entry = header["model.transformer.ln_f.weight"] as! [String: Any]
        entry["dtype"] = "I32"
        header["model.transformer.ln_f.weight"] = entry
    }
    let message = checkpointErrorMessage { try scratch.loadWholeModel() }
    #expect(message.contains("ln_f.weight") && message.contains("unsupported dtype I32"))
}

/// JSON values written into config.json: a string or a flag.
enum ConfigValue: Sendable, CustomTestStringConvertible {
    case text(String)
    case flag(Bool)
    var json: Any {
        switch self {
        case .text(let s): return s
        case .flag(let b): return b
        }
    }
    var testDescription: String { "\(json)" }
}

@Test(arguments: [
    ("block_type", ConfigValue.text("sequential")),
    ("activation_type", .text("gelu")),
    ("alibi", .flag(true)),
    ("include_bias", .flag(true)),
])
func unsupportedConfigValueNamesTheKey(key: String, value: ConfigValue) throws {
    let scratch = try ScratchCheckpoint()
    try scratch.editConfig { $0[key] = value.json }
    let message = checkpointErrorMessage { try scratch.loadWholeModel() }
    #expect(message.contains("config.json") && message.contains("'\(key)'") && message.contains("unsupported"))
}

@Test func inconsistentHeadCountsAreRejected() throws {
    let scratch = try ScratchCheckpoint()
    try scratch.editConfig { $0["n_kv_heads"] = 3 }
    let message = checkpointErrorMessage { try scratch.loadWholeModel() }
    #expect(message.contains("'n_kv_heads'"))
    try scratch.editConfig {
        $0["n_kv_heads"] = 2
        $0["d_model"] = "wide"
    }
    #expect(checkpointErrorMessage { try scratch.loadWholeModel() }.contains("'d_model' is not a number"))
}

@Test func shardIndexPointingAtMissingShardIsNamed() throws {
    let scratch = try ScratchCheckpoint(copying: "tiny-llada-sharded")
    try FileManager.default.removeItem(at: scratch.url.appendingPathComponent("model-00002-of-00002.safetensors"))
    let message = checkpointErrorMessage { try scratch.loadWholeModel() }
    #expect(message.contains("model-00002-of-00002.safetensors: file not found"))
}

@Test func shardIndexPointingAtMissingTensorIsNamed() throws {
    let scratch = try ScratchCheckpoint(copying: "tiny-llada-sharded")
    let indexURL = scratch.url.appendingPathComponent("model.safetensors.index.json")
    var index = try JSONSerialization.jsonObject(with: Data(contentsOf: indexURL)) as! [String: Any]
    var map = index["weight_map"] as! [String: String]
    let shard = map["model.transformer.blocks.0.q_proj.weight"]!
    map["model.transformer.blocks.0.extra.weight"] = shard
    index["weight_map"] = map
    try JSONSerialization.data(withJSONObject: index).write(to: indexURL)
    let message = checkpointErrorMessage { try scratch.loadWholeModel() }
    #expect(message == scratch.url.appendingPathComponent(shard).path + ": tensor 'model.transformer.blocks.0.extra.weight' not found")
}

@Test func stageRejectsBadRequestsWithoutCrashing() throws {
    let stage = try Fixtures.wholeModel("tiny-llada")
    #expect(throws: StageError.tokenOutOfRange(token: 5000, embeddingSize: 320)) {
        try stage.forward([SequenceForward(sequenceID: 1, length: 2)], input: .tokens([1, 5000]))
    }
    #expect(throws: StageError.rowCount(expected: 2, found: 3)) {
        try stage.forward([SequenceForward(sequenceID: 1, length: 2)], input: .tokens([1, 2, 3]))
    }
    #expect(throws: StageError.sequenceTooLong(length: 300, maximum: 256)) {
        try stage.forward([SequenceForward(sequenceID: 1, length: 300)], input: .tokens(Array(repeating: 1, count: 300)))
    }
    #expect(throws: StageError.invalidRange(sequenceID: 1, computed: 1..<2, length: 2)) {
        try stage.forward([SequenceForward(sequenceID: 1, length: 2, computed: 1..<2)], input: .tokens([1]))
    }
    #expect(throws: StageError.inputKind(expected: "token ids")) {
        try stage.forward([SequenceForward(sequenceID: 1, length: 1)], input: .hidden(Array(repeating: 0, count: 64)))
    }
}

/// The benchmark's random checkpoint loads through the same code as a downloaded one, holds
/// exactly the parameters its shape claims, and runs a forward pass to finite readouts.
@Test func randomCheckpointsLoadAndRun() throws {
    var shape = RandomCheckpointShape()
    (shape.dModel, shape.layers, shape.heads, shape.kvHeads, shape.mlpHiddenSize, shape.vocabularySize) = (64, 2, 4, 2, 96, 300)
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("l2pd-random-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: url) }
    try RandomCheckpoint.write(shape, to: url)
    let checkpoint = try Checkpoint(directory: url)
    #expect(checkpoint.config.dModel == 64 && checkpoint.config.layers == 2 && checkpoint.config.kvHeads == 2)
    let weightsBytes = try FileManager.default.attributesOfItem(atPath: url.appendingPathComponent("model.safetensors").path)[.size] as! Int
    // BF16 by default: two bytes a parameter, plus the header.
    #expect(weightsBytes > 2 * shape.parameterCount && weightsBytes < 2 * shape.parameterCount + 16_384)
    let stage = Stage(weights: try StageWeights(checkpoint: checkpoint, layers: 0..<2), threads: 1)
    #expect(stage.weights.parameterCount == shape.parameterCount)
    #expect(stage.weights.byteCount > 2 * shape.parameterCount && stage.weights.byteCount < 2 * shape.parameterCount + 4 * 64 * 5)
    let readouts = try stage.forward([SequenceForward(sequenceID: 1, length: 5, readPositions: [0, 4])], input: .tokens([1, 2, 3, 4, 5]))
    guard case .readouts(let r) = readouts else {
        Issue.record("the last stage should answer with readouts")
        return
    }
    #expect(r.first?.confidences.allSatisfy { $0.isFinite && $0 > 0 && $0 <= 1 } == true)
}
