import L2PDModel
import L2PDStageIO

/// Merges the forward passes of concurrent requests into batches: while `maxInFlight` batches
/// are already running (one per pipeline stage keeps every stage busy), new forwards wait and
/// leave together as one batch, so each stage runs one larger matrix product instead of
/// several small ones. Each sequence's readout is computed exactly as it would be alone.
public actor BatchingPipeline: Pipeline {
    public nonisolated let config: ModelConfig
    public let inner: any Pipeline
    public let maxInFlight: Int
    public let maxBatch: Int
    private var waiting: [Waiting] = []
    private var inFlight = 0
    /// Batches sent and sequences in them, for statistics.
    public private(set) var batches = 0
    public private(set) var batchedSequences = 0

    struct Waiting {
        var sequences: [SequenceForward]
        var tokens: [Int]
        var continuation: CheckedContinuation<[Readout], any Error>
    }

    public init(_ inner: any Pipeline, maxInFlight: Int, maxBatch: Int = 16) {
        self.inner = inner
        self.config = inner.config
        self.maxInFlight = max(1, maxInFlight)
        self.maxBatch = max(1, maxBatch)
    }

    public func forward(_ batch: [SequenceForward], tokens: [Int]) async throws -> [Readout] {
        try await withCheckedThrowingContinuation { continuation in
            waiting.append(Waiting(sequences: batch, tokens: tokens, continuation: continuation))
            launch()
        }
    }

    public func release(_ sequenceID: UInt64) async { await inner.release(sequenceID) }

    /// Sends what waits while fewer than `maxInFlight` batches run.
    private func launch() {
        while inFlight < maxInFlight && !waiting.isEmpty {
            var taken: [Waiting] = []
            var sequences = 0
            while let next = waiting.first, taken.isEmpty || sequences + next.sequences.count <= maxBatch {
                taken.append(waiting.removeFirst())
                sequences += next.sequences.count
            }
            inFlight += 1
            batches += 1
            batchedSequences += sequences
            let group = taken
            Task { await self.run(group) }
        }
    }

    private func run(_ group: [Waiting]) async {
        let sequences = group.flatMap(\.sequences)
        let tokens = group.flatMap(\.tokens)
        do {
            let readouts = try await inner.forward(sequences, tokens: tokens)
            guard readouts.count == sequences.count else {
                throw PipelineError("a batch of \(sequences.count) sequences came back with \(readouts.count) readouts")
            }
            var offset = 0
            for waiting in group {
                waiting.continuation.resume(returning: Array(readouts[offset..<offset + waiting.sequences.count]))
                offset += waiting.sequences.count
            }
        } catch {
            for waiting in group { waiting.continuation.resume(throwing: error) }
        }
        inFlight -= 1
        launch()
    }
}

/// A pipeline that broke its own contract.
public struct PipelineError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
