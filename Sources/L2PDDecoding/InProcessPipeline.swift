import Dispatch
import L2PDModel
import L2PDStageIO

/// Stages of one model run one after another in this process, on a dedicated serial queue
/// (BLAS and the stages' own threads never block Swift's cooperative pool).
public final class InProcessPipeline: Pipeline, @unchecked Sendable {
    // @unchecked: `stages` are touched only on `queue`.
    public let config: ModelConfig
    private let stages: [Stage]
    private let queue = DispatchQueue(label: "l2pd.in-process-pipeline")

    /// Splits the model into stages over `layerRanges` (default: one stage with every
    /// layer). Ranges must be contiguous and cover the model exactly once. `weights` says
    /// how the stages hold their weights; every page is read now, not in the first pass.
    public init(
        checkpoint: Checkpoint, layerRanges: [Range<Int>]? = nil, threads: Int = 1, weights format: WeightFormat = .native
    ) throws {
        config = checkpoint.config
        let ranges = layerRanges ?? [0..<checkpoint.config.layers]
        try LayerPlan.validate(ranges, layers: checkpoint.config.layers)
        stages = try ranges.map {
            let weights = try StageWeights(checkpoint: checkpoint, layers: $0, format: format)
            weights.prefault()
            return Stage(weights: weights, threads: threads)
        }
        weightBytes = stages.reduce(0) { $0 + $1.weights.byteCount }
    }

    /// Bytes of weights the stages hold, in the dtype they are held in.
    public let weightBytes: Int

    public func forward(_ batch: [SequenceForward], tokens: [Int]) async throws -> [Readout] {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { [self] in
                do {
                    var input = StageInput.tokens(tokens)
                    for stage in stages {
                        switch try stage.forward(batch, input: input) {
                        case .hidden(let hidden): input = .hidden(hidden)
                        case .readouts(let readouts):
                            continuation.resume(returning: readouts)
                            return
                        }
                    }
                    continuation.resume(throwing: StageError.inputKind(expected: "a last stage"))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    public func release(_ sequenceID: UInt64) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            queue.async { [self] in
                for stage in stages { stage.release(sequenceID) }
                continuation.resume()
            }
        }
    }

    /// Sequences with a live K/V cache on the first stage (for leak checks).
    public func cachedSequenceCount() async -> Int {
        await withCheckedContinuation { continuation in
            queue.async { [self] in continuation.resume(returning: stages[0].cachedSequenceCount) }
        }
    }
}
