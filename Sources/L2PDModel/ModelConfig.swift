import Foundation

/// The subset of LLaDA's `config.json` the engine reads, validated. Keys keep LLaDA's names in
/// the JSON; values we do not implement are rejected with the key's name rather than ignored.
public struct ModelConfig: Sendable, Equatable {
    public var dModel: Int
    public var heads: Int
    public var kvHeads: Int
    public var layers: Int
    public var mlpHiddenSize: Int
    /// Tokens the tokenizer can produce.
    public var vocabularySize: Int
    /// Rows of the embedding and of the LM head (>= `vocabularySize`; logits cover all rows).
    public var embeddingSize: Int
    public var ropeTheta: Double
    public var rmsNormEpsilon: Float
    public var maskTokenID: Int
    public var eosTokenID: Int
    public var maxSequenceLength: Int
    /// When true the LM head is the embedding matrix and no `ff_out` head tensor exists.
    public var weightTying: Bool

    public var headDimension: Int { dModel / heads }
    public var kvDimension: Int { kvHeads * headDimension }

    public init(
        dModel: Int, heads: Int, kvHeads: Int, layers: Int, mlpHiddenSize: Int,
        vocabularySize: Int, embeddingSize: Int, ropeTheta: Double, rmsNormEpsilon: Float,
        maskTokenID: Int, eosTokenID: Int, maxSequenceLength: Int, weightTying: Bool
    ) {
        self.dModel = dModel
        self.heads = heads
        self.kvHeads = kvHeads
        self.layers = layers
        self.mlpHiddenSize = mlpHiddenSize
        self.vocabularySize = vocabularySize
        self.embeddingSize = embeddingSize
        self.ropeTheta = ropeTheta
        self.rmsNormEpsilon = rmsNormEpsilon
        self.maskTokenID = maskTokenID
        self.eosTokenID = eosTokenID
        self.maxSequenceLength = maxSequenceLength
        self.weightTying = weightTying
    }

    /// Reads and validates `config.json`.
    public static func load(from url: URL) throws -> ModelConfig {
        let path = url.path
        guard FileManager.default.fileExists(atPath: path) else {
            throw CheckpointError.missingFile(path: path)
        }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw CheckpointError.unreadableFile(path: path, reason: error.localizedDescription)
        }
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: data) } catch {
            throw CheckpointError.invalidJSON(path: path, reason: "not parseable")
        }
        guard let json = object as? [String: Any] else {
            throw CheckpointError.invalidJSON(path: path, reason: "top level is not an object")
        }
        return try ModelConfig(json: json, path: path)
    }

    /// Validates a parsed `config.json`; `path` is only used in error messages.
    public init(json: [String: Any], path: String) throws {
        let reader = ConfigReader(json: json, path: path)
        try reader.require("block_type", in: ["llama"], default: "llama")
        try reader.require("activation_type", in: ["silu"], default: "silu")
        try reader.require("layer_norm_type", in: ["rms"], default: "rms")
        for key in [
            "include_bias", "include_qkv_bias", "alibi", "attention_layer_norm",
            "scale_logits", "input_emb_norm", "bias_for_layer_norm",
        ] {
            try reader.requireFlag(key, equals: false)
        }
        try reader.requireFlag("rope", equals: true)
        try reader.requireFlag("layer_norm_with_affine", equals: true)
        if let clip = json["clip_qkv"], !(clip is NSNull) {
            throw CheckpointError.unsupportedConfig(
                path: path, key: "clip_qkv", value: "\(clip)", supported: "null")
        }

        dModel = try reader.positiveInt("d_model")
        heads = try reader.positiveInt("n_heads")
        layers = try reader.positiveInt("n_layers")
        if json["n_kv_heads"] == nil || json["n_kv_heads"] is NSNull {
            kvHeads = (json["multi_query_attention"] as? Bool) == true ? 1 : heads
        } else {
            kvHeads = try reader.positiveInt("n_kv_heads")
        }
        mlpHiddenSize = try reader.positiveInt("mlp_hidden_size")
        vocabularySize = try reader.positiveInt("vocab_size")
        embeddingSize =
            json["embedding_size"] == nil || json["embedding_size"] is NSNull
            ? vocabularySize : try reader.positiveInt("embedding_size")
        ropeTheta = try reader.positiveDouble("rope_theta")
        rmsNormEpsilon = Float(try reader.positiveDouble("rms_norm_eps"))
        maskTokenID = try reader.nonNegativeInt("mask_token_id")
        eosTokenID = try reader.nonNegativeInt("eos_token_id")
        maxSequenceLength = try reader.positiveInt("max_sequence_length")
        weightTying = (json["weight_tying"] as? Bool) ?? false

        guard dModel % heads == 0 else {
            throw CheckpointError.invalidConfig(
                path: path, key: "n_heads", reason: "(\(heads)) does not divide d_model (\(dModel))")
        }
        guard heads % kvHeads == 0 else {
            throw CheckpointError.invalidConfig(
                path: path, key: "n_kv_heads", reason: "(\(kvHeads)) does not divide n_heads (\(heads))")
        }
        guard headDimension % 2 == 0 else {
            throw CheckpointError.invalidConfig(
                path: path, key: "n_heads", reason: "gives an odd head size \(headDimension); rotary needs an even one")
        }
        guard embeddingSize >= vocabularySize else {
            throw CheckpointError.invalidConfig(
                path: path, key: "embedding_size", reason: "(\(embeddingSize)) is smaller than vocab_size (\(vocabularySize))")
        }
        for (key, id) in [("mask_token_id", maskTokenID), ("eos_token_id", eosTokenID)] where id >= embeddingSize {
            throw CheckpointError.invalidConfig(
                path: path, key: key, reason: "(\(id)) is outside the embedding (\(embeddingSize) rows)")
        }
    }
}

/// Typed, named access to a JSON object for validation messages.
private struct ConfigReader {
    let json: [String: Any]
    let path: String

    func number(_ key: String) throws -> NSNumber {
        guard let value = json[key], !(value is NSNull) else {
            throw CheckpointError.invalidConfig(path: path, key: key, reason: "is missing")
        }
        guard let number = value as? NSNumber else {
            throw CheckpointError.invalidConfig(path: path, key: key, reason: "is not a number")
        }
        return number
    }

    func positiveInt(_ key: String) throws -> Int {
        let value = try number(key).doubleValue
        guard value == value.rounded(), value >= 1, value < 1e12 else {
            throw CheckpointError.invalidConfig(path: path, key: key, reason: "must be a positive integer, found \(value)")
        }
        return Int(value)
    }

    func nonNegativeInt(_ key: String) throws -> Int {
        let value = try number(key).doubleValue
        guard value == value.rounded(), value >= 0, value < 1e12 else {
            throw CheckpointError.invalidConfig(path: path, key: key, reason: "must be a non-negative integer, found \(value)")
        }
        return Int(value)
    }

    func positiveDouble(_ key: String) throws -> Double {
        let value = try number(key).doubleValue
        guard value > 0, value.isFinite else {
            throw CheckpointError.invalidConfig(path: path, key: key, reason: "must be a positive number, found \(value)")
        }
        return value
    }

    func require(_ key: String, in allowed: [String], default fallback: String) throws {
        let value = json[key].flatMap { $0 as? String } ?? (json[key] == nil ? fallback : "\(json[key]!)")
        guard allowed.contains(value) else {
            throw CheckpointError.unsupportedConfig(
                path: path, key: key, value: "\"\(value)\"", supported: allowed.map { "\"\($0)\"" }.joined(separator: ", "))
        }
    }

    func requireFlag(_ key: String, equals expected: Bool) throws {
        guard let value = json[key], !(value is NSNull) else { return }
        guard let flag = value as? Bool, flag == expected else {
            throw CheckpointError.unsupportedConfig(
                path: path, key: key, value: "\(value)", supported: "\(expected)")
        }
    }
}
