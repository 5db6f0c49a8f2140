import Foundation
import L2PDFilter

extension StepContext {
    /// The filter's input for this step (see `FilterFeatures`): the block's confidences
    /// zero-padded to the block length, then the features the variant adds.
    public func filterInput(_ features: FilterFeatures) -> [Float] {
        let n = confidences.count
        var input = [Float](repeating: 0, count: features.width(blockLength: blockLength))
        func put(_ feature: Int, _ value: (Int) -> Float) {
            for i in 0..<n { input[feature * blockLength + i] = value(i) }
        }
        put(0) { confidences[$0] }
        switch features {
        case .confidence: break
        case .confidenceMargin:
            if let margins { put(1) { margins[$0] } }
        case .history:
            let cap = Float(FilterFeatures.persistenceCap)
            put(1) { masked[$0] ? 1 : 0 }
            if !persistence.isEmpty { put(2) { min(Float(persistence[$0]), cap) / cap } }
            if let previousConfidences { put(3) { $0 < previousConfidences.count ? confidences[$0] - previousConfidences[$0] : 0 } }
            if let margins { put(4) { margins[$0] } }
            put(5) { tokens[$0] == endOfText ? 1 : 0 }
            input[6 * blockLength] = Float(masked.filter { $0 }.count) / Float(blockLength)
            input[6 * blockLength + 1] = Float(stepInBlock) / Float(blockLength)
        }
        return input
    }
}

/// Learn2PD: commit what the learned filter accepts (`sigmoid(logit) > tau` on a masked
/// position) together with the baseline schedule's most confident positions (the floor).
public struct Learn2PDPolicy: UnmaskPolicy {
    public let name = "learn2pd"
    public let filter: FilterNetwork
    public let tau: Float

    public init(filter: FilterNetwork, tau: Float? = nil) {
        self.filter = filter
        self.tau = tau ?? filter.tau
    }

    public var needsMargins: Bool { filter.features.needsMargins }

    public func decide(_ context: StepContext) -> UnmaskDecision {
        precondition(context.blockLength == filter.blockLength, "filter trained for another block length")
        let logits = filter.logits(context.filterInput(filter.features))
        let threshold = Float.log(tau / (1 - tau))  // sigmoid(z) > tau  <=>  z > logit(tau)
        let accepted = context.masked.indices.filter { context.masked[$0] && logits[$0] > threshold }
        let floor = context.maskedByConfidence.prefix(max(1, context.scheduled))
        let commit = Array(Set(accepted).union(floor)).sorted()
        return UnmaskDecision(commit: commit, acceptedByFilter: accepted)
    }
}

/// The Extremely Greedy Parallel oracle: commit every masked position whose prediction
/// already equals the reference answer; if none does, the baseline's choice.
public struct ExtremelyGreedyPolicy: UnmaskPolicy {
    public let name = "egp"
    public init() {}
    public var needsReference: Bool { true }

    public func decide(_ context: StepContext) -> UnmaskDecision {
        guard let reference = context.reference else { return LowConfidencePolicy().decide(context) }
        let matches = context.masked.indices.filter { context.masked[$0] && context.tokens[$0] == reference[$0] }
        if matches.isEmpty { return LowConfidencePolicy().decide(context) }
        return UnmaskDecision(commit: matches)
    }
}

extension Float {
    fileprivate static func log(_ x: Float) -> Float { Float(Foundation.log(Double(x))) }
}
