import Foundation
import L2PDKernels

/// A LLaDA-shaped checkpoint with seeded random weights, written in the Hugging Face layout
/// (`config.json`, `model.safetensors`): what `l2pd bench forward` times when given no model.
public struct RandomCheckpointShape: Sendable, Equatable, Codable {
    public var dModel = 1024
    public var layers = 8
    public var heads = 16
    public var kvHeads = 16
    public var mlpHiddenSize = 2816
    public var vocabularySize = 8192
    public var maxSequenceLength = 4096
    /// How the weights are stored: BF16, as real LLaDA checkpoints are, or F32.
    public var dtype = WeightDType.bf16
    public init() {}

    /// Parameters of the model (embedding and head included).
    public var parameterCount: Int {
        let hd = dModel / heads
        let perLayer = 2 * dModel + 2 * dModel * dModel + 2 * kvHeads * hd * dModel + 3 * dModel * mlpHiddenSize
        return layers * perLayer + 2 * vocabularySize * dModel + dModel
    }
}

public enum RandomCheckpoint {
    /// Writes the checkpoint into `directory` (created if needed); weights ~ N(0, 0.02²)-like
    /// uniform noise, norms 1.
    public static func write(_ s: RandomCheckpointShape, to directory: URL, seed: UInt64 = 1) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let config: [String: Any] = [
            "architectures": ["LLaDAModelLM"], "model_type": "llada", "block_type": "llama", "activation_type": "silu",
            "d_model": s.dModel, "n_layers": s.layers, "n_heads": s.heads, "n_kv_heads": s.kvHeads,
            "mlp_hidden_size": s.mlpHiddenSize, "vocab_size": s.vocabularySize, "embedding_size": s.vocabularySize,
            "rope": true, "rope_theta": 500000.0, "rms_norm_eps": 1e-5, "layer_norm_type": "rms", "alibi": false,
            "include_bias": false, "include_qkv_bias": false, "attention_layer_norm": false, "weight_tying": false,
            "mask_token_id": s.vocabularySize - 1, "eos_token_id": s.vocabularySize - 2,
            "max_sequence_length": s.maxSequenceLength,
        ]
        try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys, .prettyPrinted])
            .write(to: directory.appendingPathComponent("config.json"))
        var state = seed
        func noise(_ count: Int) -> [Float] {
            (0..<count).map { _ in
                state &+= 0x9E37_79B9_7F4A_7C15
                var z = state
                z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                z ^= z >> 31
                return (Float(z >> 40) / Float(1 << 24) - 0.5) * 0.07
            }
        }
        let d = s.dModel
        let kv = s.kvHeads * (d / s.heads)
        typealias T = SafetensorsWriter.Tensor
        var tensors = [T(name: "model.transformer.wte.weight", shape: [s.vocabularySize, d], values: noise(s.vocabularySize * d))]
        for i in 0..<s.layers {
            let p = "model.transformer.blocks.\(i)."
            tensors += [
                T(name: p + "attn_norm.weight", shape: [d], values: Array(repeating: 1, count: d)),
                T(name: p + "q_proj.weight", shape: [d, d], values: noise(d * d)),
                T(name: p + "k_proj.weight", shape: [kv, d], values: noise(kv * d)),
                T(name: p + "v_proj.weight", shape: [kv, d], values: noise(kv * d)),
                T(name: p + "attn_out.weight", shape: [d, d], values: noise(d * d)),
                T(name: p + "ff_norm.weight", shape: [d], values: Array(repeating: 1, count: d)),
                T(name: p + "ff_proj.weight", shape: [s.mlpHiddenSize, d], values: noise(s.mlpHiddenSize * d)),
                T(name: p + "up_proj.weight", shape: [s.mlpHiddenSize, d], values: noise(s.mlpHiddenSize * d)),
                T(name: p + "ff_out.weight", shape: [d, s.mlpHiddenSize], values: noise(d * s.mlpHiddenSize)),
            ]
        }
        tensors += [
            T(name: "model.transformer.ln_f.weight", shape: [d], values: Array(repeating: 1, count: d)),
            T(name: "model.transformer.ff_out.weight", shape: [s.vocabularySize, d], values: noise(s.vocabularySize * d)),
        ]
        try SafetensorsWriter.write(tensors, dtype: s.dtype, to: directory.appendingPathComponent("model.safetensors"))
    }
}
