import L2PDKernels

/// The weights of one transformer block, read from LLaDA's tensors
/// (`model.transformer.blocks.{i}.<name>.weight`, PyTorch's `[out, in]` layout). Products that
/// share an input are stacked so each is one matrix product: `qkv` holds `q_proj`, `k_proj`,
/// `v_proj` row-stacked, and `gateUp` holds `ff_proj` then `up_proj`.
public final class BlockWeights {
    public let attnNorm, qkv, attnOut: FloatBuffer
    public let ffNorm, gateUp, ffOut: FloatBuffer

    init(checkpoint: Checkpoint, index i: Int) throws {
        let c = checkpoint.config
        let d = c.dModel
        func name(_ short: String) -> String { "model.transformer.blocks.\(i).\(short).weight" }
        attnNorm = try checkpoint.load(name("attn_norm"), shape: [d])
        qkv = FloatBuffer(capacity: (d + 2 * c.kvDimension) * d)
        try checkpoint.read(name("q_proj"), shape: [d, d], into: qkv.pointer)
        try checkpoint.read(name("k_proj"), shape: [c.kvDimension, d], into: qkv.pointer + d * d)
        try checkpoint.read(name("v_proj"), shape: [c.kvDimension, d], into: qkv.pointer + (d + c.kvDimension) * d)
        attnOut = try checkpoint.load(name("attn_out"), shape: [d, d])
        ffNorm = try checkpoint.load(name("ff_norm"), shape: [d])
        gateUp = FloatBuffer(capacity: 2 * c.mlpHiddenSize * d)
        try checkpoint.read(name("ff_proj"), shape: [c.mlpHiddenSize, d], into: gateUp.pointer)
        try checkpoint.read(name("up_proj"), shape: [c.mlpHiddenSize, d], into: gateUp.pointer + c.mlpHiddenSize * d)
        ffOut = try checkpoint.load(name("ff_out"), shape: [d, c.mlpHiddenSize])
    }
}

/// The weights one pipeline stage holds: a contiguous range of blocks, plus the embedding on
/// the first stage and the final norm and LM head on the last. Nothing else is loaded, so a
/// stage with a quarter of the layers needs about a quarter of the memory.
public final class StageWeights: @unchecked Sendable {
    // @unchecked: weights are written once in `init` and only read afterwards.
    public let config: ModelConfig
    public let layers: Range<Int>
    public let embedding: FloatBuffer?
    public let blocks: [BlockWeights]
    public let finalNorm: FloatBuffer?
    /// `[embeddingSize, dModel]`; the embedding itself when the model ties weights.
    public let head: FloatBuffer?

    public var isFirst: Bool { layers.lowerBound == 0 }
    public var isLast: Bool { layers.upperBound == config.layers }

    public init(checkpoint: Checkpoint, layers: Range<Int>) throws {
        let c = checkpoint.config
        guard layers.lowerBound >= 0, layers.upperBound <= c.layers, !layers.isEmpty else {
            throw CheckpointError.invalidLayerRange(lower: layers.lowerBound, upper: layers.upperBound, layers: c.layers)
        }
        config = c
        self.layers = layers
        let embeddingShape = [c.embeddingSize, c.dModel]
        let first = layers.lowerBound == 0
        let last = layers.upperBound == c.layers
        embedding = first ? try checkpoint.load("model.transformer.wte.weight", shape: embeddingShape) : nil
        blocks = try layers.map { try BlockWeights(checkpoint: checkpoint, index: $0) }
        if last {
            finalNorm = try checkpoint.load("model.transformer.ln_f.weight", shape: [c.dModel])
            if c.weightTying {
                head = try embedding ?? checkpoint.load("model.transformer.wte.weight", shape: embeddingShape)
            } else {
                head = try checkpoint.load("model.transformer.ff_out.weight", shape: embeddingShape)
            }
        } else {
            finalNorm = nil
            head = nil
        }
    }

    /// Floats held by this stage (weights only).
    public var parameterCount: Int {
        let c = config
        let perBlock =
            2 * c.dModel + 2 * c.dModel * c.dModel + 2 * c.kvDimension * c.dModel
            + 3 * c.mlpHiddenSize * c.dModel
        var total = blocks.count * perBlock
        if embedding != nil { total += c.embeddingSize * c.dModel }
        if finalNorm != nil { total += c.dModel }
        if head != nil && !(c.weightTying && embedding != nil) { total += c.embeddingSize * c.dModel }
        return total
    }
}
