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
    /// The waiting callers, by id; each is resumed once (with its readouts, an error, or
    /// `CancellationError` when its task is cancelled first).
    private var callers: [UInt64: CheckedContinuation<[Readout], any Error>] = [:]
    /// Batches running, with their callers: a batch whose callers all left is cancelled.
    private var running: [UInt64: (task: Task<Void, Never>, callers: [UInt64])] = [:]
    private var nextID: UInt64 = 0
    private var inFlight = 0
    /// Batches sent and sequences in them, for statistics.
    public private(set) var batches = 0
    public private(set) var batchedSequences = 0

    struct Waiting {
        var id: UInt64
        var sequences: [SequenceForward]
        var tokens: [Int]
    }

    public init(_ inner: any Pipeline, maxInFlight: Int, maxBatch: Int = 16) {
        self.inner = inner
        self.config = inner.config
        self.maxInFlight = max(1, maxInFlight)
        self.maxBatch = max(1, maxBatch)
    }

    /// Cancelling the calling task ends its wait at once (a request past its deadline, a client
    /// gone); the batch it joined runs on for the others, or stops when none is left.
    public func forward(_ batch: [SequenceForward], tokens: [Int]) async throws -> [Readout] {
        let id = nextID
        nextID += 1
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                if Task.isCancelled { return continuation.resume(throwing: CancellationError()) }
                callers[id] = continuation
                waiting.append(Waiting(id: id, sequences: batch, tokens: tokens))
                launch()
            }
        } onCancel: {
            Task { await self.leave(id) }
        }
    }

    public func release(_ sequenceID: UInt64) async { await inner.release(sequenceID) }

    private func leave(_ id: UInt64) {
        guard let caller = callers.removeValue(forKey: id) else { return }
        caller.resume(throwing: CancellationError())
        waiting.removeAll { $0.id == id }
        for batch in running.values where batch.callers.contains(id) && batch.callers.allSatisfy({ callers[$0] == nil }) {
            batch.task.cancel()
        }
    }

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
            let key = nextID
            nextID += 1
            running[key] = (Task { await self.run(group, key: key) }, group.map(\.id))
        }
    }

    private func run(_ group: [Waiting], key: UInt64) async {
        let sequences = group.flatMap(\.sequences)
        let tokens = group.flatMap(\.tokens)
        do {
            let readouts = try await inner.forward(sequences, tokens: tokens)
            guard readouts.count == sequences.count else {
                throw PipelineError("a batch of \(sequences.count) sequences came back with \(readouts.count) readouts")
            }
            var offset = 0
            for waiting in group {
                callers.removeValue(forKey: waiting.id)?.resume(
                    returning: Array(readouts[offset..<offset + waiting.sequences.count]))
                offset += waiting.sequences.count
            }
        } catch {
            for waiting in group { callers.removeValue(forKey: waiting.id)?.resume(throwing: error) }
        }
        running[key] = nil
        inFlight -= 1
        launch()
    }
}

/// A pipeline that broke its own contract.
public struct PipelineError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
