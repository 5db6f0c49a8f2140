import L2PDFilter

/// Builds policies from their command-line names.
public enum PolicyFactory {
    public static let names = ["baseline", "random", "threshold", "factor", "learn2pd", "egp"]

    /// Settings a policy may read; each has the paper's default.
    public struct Settings: Sendable {
        public var threshold: Float = 0.9
        public var factor: Float = 1
        /// The Learn2PD filter (required by `learn2pd`).
        public var filter: FilterNetwork? = nil
        /// Acceptance threshold of the filter (nil: the filter file's own default).
        public var tau: Float? = nil
        public init() {}
    }

    public static func make(_ name: String, settings: Settings = Settings()) throws -> any UnmaskPolicy {
        switch name {
        case "baseline", "low-confidence": return LowConfidencePolicy()
        case "random": return RandomPolicy()
        case "threshold":
            guard settings.threshold > 0 && settings.threshold <= 1 else { throw GenerationError.invalidThreshold(settings.threshold) }
            return ThresholdPolicy(threshold: settings.threshold)
        case "factor":
            guard settings.factor > 0 else { throw GenerationError.invalidLength(name: "factor", value: Int(settings.factor)) }
            return FactorPolicy(factor: settings.factor)
        case "learn2pd":
            guard let filter = settings.filter else { throw GenerationError.missingFilter }
            if let tau = settings.tau, !(tau > 0 && tau < 1) { throw GenerationError.invalidThreshold(tau) }
            return Learn2PDPolicy(filter: filter, tau: settings.tau)
        case "egp": return ExtremelyGreedyPolicy()
        default: throw GenerationError.unknownPolicy(name)
        }
    }
}
