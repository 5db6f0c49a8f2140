import Foundation
import L2PDDecoding
import L2PDEngine
import L2PDFilter
import L2PDTasks

/// Learn2PD's training data: for each prompt, the baseline's answer is the reference; an EGP
/// replay then records, at every step, the filter's input for the current block and per
/// position whether the current prediction already equals the reference.
public enum FilterCollection {
    public static func collect(
        examples: [TaskExample], generator: TextGenerator, options: GenerationOptions, features: FilterFeatures,
        progress: @Sendable (Int, Int) -> Void = { _, _ in }
    ) async throws -> FilterDataset {
        let recorder = StepRecorder(blockLength: options.blockLength, features: features)
        for (i, example) in examples.enumerated() {
            let prompt = try generator.promptTokens(example.prompt, raw: false)
            var replay = options
            replay.reference = try await generator.referenceAnswer(prompt: prompt, options: options, sequenceID: UInt64(i + 1))
            replay.policy = RecordingPolicy(recorder: recorder)
            replay.eotp = false
            replay.cache = .none
            _ = try await generator.decoder.generate(prompt: prompt, options: replay, sequenceID: UInt64(i + 1))
            progress(i + 1, examples.count)
        }
        return recorder.dataset
    }
}

/// Collects one record per step; decoding runs one step at a time, the lock keeps it honest.
final class StepRecorder: @unchecked Sendable {
    private let lock = NSLock()
    private var data: FilterDataset
    let features: FilterFeatures

    init(blockLength: Int, features: FilterFeatures) {
        data = FilterDataset(blockLength: blockLength, features: features)
        self.features = features
    }

    func record(_ context: StepContext) {
        guard let reference = context.reference else { return }
        let pad = context.blockLength - context.tokens.count
        let labels = context.tokens.indices.map { context.tokens[$0] == reference[$0] ? Float(1) : 0 } + [Float](repeating: 0, count: pad)
        let masked = context.masked.map { $0 ? Float(1) : 0 } + [Float](repeating: 0, count: pad)
        let input = context.filterInput(features)
        lock.withLock { data.append(input: input, labels: labels, masked: masked) }
    }

    var dataset: FilterDataset { lock.withLock { data } }
}

/// EGP that records every step it decides.
struct RecordingPolicy: UnmaskPolicy {
    let name = "egp"
    let recorder: StepRecorder
    var needsReference: Bool { true }
    var needsMargins: Bool { recorder.features.needsMargins }

    func decide(_ context: StepContext) -> UnmaskDecision {
        recorder.record(context)
        return ExtremelyGreedyPolicy().decide(context)
    }
}
