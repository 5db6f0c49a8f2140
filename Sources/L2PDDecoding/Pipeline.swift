import Dispatch
import Foundation
import L2PDModel

/// The decoder's only view of the model: forward some positions of some sequences under a
/// cache directive and get readouts back. Where the stages run (this process, other
/// machines) is the implementation's business; decoding never depends on it.
public protocol Pipeline: Sendable {
    /// Runs the batch through every stage. `tokens` holds each sequence's `computed`
    /// positions, concatenated in batch order. Returns one readout per sequence.
    func forward(_ batch: [SequenceForward], tokens: [Int]) async throws -> [Readout]
    /// Frees the sequence's K/V caches on every stage.
    func release(_ sequenceID: UInt64) async
    /// The model every stage serves.
    var config: ModelConfig { get }
}

/// Stages of one model run one after another in this process, on a dedicated serial queue
/// (BLAS and the stages' own threads never block Swift's cooperative pool).
public final class InProcessPipeline: Pipeline, @unchecked Sendable {
    // @unchecked: `stages` are touched only on `queue`.
    public let config: ModelConfig
    private let stages: [Stage]
    private let queue = DispatchQueue(label: "l2pd.in-process-pipeline")

    /// Splits the model into stages over `layerRanges` (default: one stage with every
    /// layer). Ranges must be contiguous and cover the model exactly once.
    public init(checkpoint: Checkpoint, layerRanges: [Range<Int>]? = nil, threads: Int = 1) throws {
        config = checkpoint.config
        let ranges = layerRanges ?? [0..<checkpoint.config.layers]
        try LayerPlan.validate(ranges, layers: checkpoint.config.layers)
        stages = try ranges.map { Stage(weights: try StageWeights(checkpoint: checkpoint, layers: $0), threads: threads) }
    }

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

/// How layers are split into contiguous stages.
public enum LayerPlan {
    /// `count` near-equal contiguous ranges covering `layers`.
    public static func even(layers: Int, stages count: Int) -> [Range<Int>] {
        let count = max(1, min(count, layers))
        return (0..<count).map { i in (layers * i / count)..<(layers * (i + 1) / count) }
    }

    /// Throws unless `ranges` are non-empty, in order, contiguous and cover `0..<layers`.
    public static func validate(_ ranges: [Range<Int>], layers: Int) throws {
        var next = 0
        for range in ranges {
            guard range.lowerBound == next, !range.isEmpty, range.upperBound <= layers else {
                throw CheckpointError.invalidLayerRange(lower: range.lowerBound, upper: range.upperBound, layers: layers)
            }
            next = range.upperBound
        }
        guard next == layers else {
            throw CheckpointError.invalidLayerRange(lower: next, upper: layers, layers: layers)
        }
    }
}
