import L2PDModel
import L2PDStageIO

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
