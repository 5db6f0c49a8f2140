import L2PDKernels

/// The weights of one transformer block, read from LLaDA's tensors
/// (`model.transformer.blocks.{i}.<name>.weight`, PyTorch's `[out, in]` layout). Products that
/// share an input are stacked so each is one matrix product: `qkv` holds `q_proj`, `k_proj`,
/// `v_proj` row-stacked, and `gateUp` holds `ff_proj` then `up_proj`. Norm weights are F32.
public final class BlockWeights {
    public let attnNorm, ffNorm: FloatBuffer
    public let qkv, attnOut, gateUp, ffOut: WeightMatrix

    init(checkpoint: Checkpoint, index i: Int, format: WeightFormat) throws {
        let c = checkpoint.config
        let d = c.dModel
        func name(_ short: String) -> String { "model.transformer.blocks.\(i).\(short).weight" }
        attnNorm = try checkpoint.load(name("attn_norm"), shape: [d])
        qkv = try checkpoint.matrix(
            [name("q_proj"), name("k_proj"), name("v_proj")], shapes: [[d, d], [c.kvDimension, d], [c.kvDimension, d]],
            format: format)
        attnOut = try checkpoint.matrix([name("attn_out")], shapes: [[d, d]], format: format)
        ffNorm = try checkpoint.load(name("ff_norm"), shape: [d])
        gateUp = try checkpoint.matrix(
            [name("ff_proj"), name("up_proj")], shapes: [[c.mlpHiddenSize, d], [c.mlpHiddenSize, d]], format: format)
        ffOut = try checkpoint.matrix([name("ff_out")], shapes: [[d, c.mlpHiddenSize]], format: format)
    }

    var matrices: [WeightMatrix] { [qkv, attnOut, gateUp, ffOut] }
    var normBytes: Int { (attnNorm.capacity + ffNorm.capacity) * 4 }
}

/// The weights one pipeline stage holds: a contiguous range of blocks, plus the embedding on
/// the first stage and the final norm and LM head on the last. Nothing else is loaded, so a
/// stage with a quarter of the layers needs about a quarter of the memory.
public final class StageWeights: @unchecked Sendable {
    // @unchecked: weights are written once in `init` and only read afterwards.
    public let config: ModelConfig
    public let layers: Range<Int>
    public let format: WeightFormat
    /// `[embeddingSize, dModel]`.
    public let embedding: WeightMatrix?
    public let blocks: [BlockWeights]
    public let finalNorm: FloatBuffer?
    /// `[embeddingSize, dModel]`; the embedding itself when the model ties weights.
    public let head: WeightMatrix?

    public var isFirst: Bool { layers.lowerBound == 0 }
    public var isLast: Bool { layers.upperBound == config.layers }

    public init(checkpoint: Checkpoint, layers: Range<Int>, format: WeightFormat = .native) throws {
        let c = checkpoint.config
        guard layers.lowerBound >= 0, layers.upperBound <= c.layers, !layers.isEmpty else {
            throw CheckpointError.invalidLayerRange(lower: layers.lowerBound, upper: layers.upperBound, layers: c.layers)
        }
        config = c
        self.layers = layers
        self.format = format
        let embeddingShape = [c.embeddingSize, c.dModel]
        let first = layers.lowerBound == 0
        let last = layers.upperBound == c.layers
        // The embedding is read row by row (a lookup), so it stays in the checkpoint's dtype
        // when the products are int8; an untied head is a product like any other.
        func table(_ name: String, lookup: Bool) throws -> WeightMatrix {
            try checkpoint.matrix([name], shapes: [embeddingShape], format: lookup && format == .int8 ? .native : format)
        }
        embedding = first ? try table("model.transformer.wte.weight", lookup: true) : nil
        blocks = try layers.map { try BlockWeights(checkpoint: checkpoint, index: $0, format: format) }
        if last {
            finalNorm = try checkpoint.load("model.transformer.ln_f.weight", shape: [c.dModel])
            if c.weightTying {
                head = try embedding ?? table("model.transformer.wte.weight", lookup: true)
            } else {
                head = try table("model.transformer.ff_out.weight", lookup: false)
            }
        } else {
            finalNorm = nil
            head = nil
        }
    }

    /// Every distinct weight matrix of the stage (a tied head counted once).
    private var matrices: [WeightMatrix] {
        var all = blocks.flatMap(\.matrices)
        if let embedding { all.append(embedding) }
        if let head, head !== embedding { all.append(head) }
        return all
    }

    /// Parameters held by this stage.
    public var parameterCount: Int {
        matrices.reduce(0) { $0 + $1.rows * $1.columns } + blocks.reduce(0) { $0 + $1.normBytes / 4 }
            + (finalNorm?.capacity ?? 0)
    }

    /// Bytes of weights held by this stage, in the dtype they are held in.
    public var byteCount: Int {
        matrices.reduce(0) { $0 + $1.byteCount } + blocks.reduce(0) { $0 + $1.normBytes } + (finalNorm?.capacity ?? 0) * 4
    }

    /// The dtypes the matrices are held in, e.g. `bf16` or `bf16+f32`.
    public var dtypeDescription: String {
        Set(matrices.flatMap { m in m.packed.map { ["\($0.precision.rawValue) packed"] } ?? m.parts.map(\.dtype.rawValue) }).sorted()
            .joined(separator: "+")
    }

    /// Reads every page of the stage's weights, so a memory-mapped checkpoint is paged in at
    /// load time instead of during the first forward pass.
    public func prefault() {
        var sum: UInt8 = 0
        for matrix in matrices { sum &+= matrix.prefault() }
        withExtendedLifetime(sum) {}
    }
}
