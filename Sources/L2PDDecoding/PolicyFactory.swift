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
            try validateThreshold(settings.threshold)
            return ThresholdPolicy(threshold: settings.threshold)
        case "factor":
            try validateFactor(settings.factor)
            return FactorPolicy(factor: settings.factor)
        case "learn2pd":
            guard let filter = settings.filter else { throw GenerationError.missingFilter }
            if let tau = settings.tau { try validateTau(tau) }
            return Learn2PDPolicy(filter: filter, tau: settings.tau)
        case "egp": return ExtremelyGreedyPolicy()
        default: throw GenerationError.unknownPolicy(String(name.prefix(64)))
        }
    }

    /// Checks every setting, whichever policy will read it.
    public static func validate(_ settings: Settings) throws {
        try validateThreshold(settings.threshold)
        try validateFactor(settings.factor)
        if let tau = settings.tau { try validateTau(tau) }
    }

    static func validateThreshold(_ value: Float) throws {
        guard value.isFinite, value > 0, value <= 1 else {
            throw GenerationError.invalidParameter(name: "threshold", value: "\(value)", expected: "in (0, 1]")
        }
    }

    static func validateFactor(_ value: Float) throws {
        guard value.isFinite, value > 0, value <= DecodingParameters.maxFactor else {
            throw GenerationError.invalidParameter(name: "factor", value: "\(value)", expected: "in (0, 1e6]")
        }
    }

    static func validateTau(_ value: Float) throws {
        guard value.isFinite, value > 0, value < 1 else {
            throw GenerationError.invalidParameter(name: "tau", value: "\(value)", expected: "in (0, 1)")
        }
    }
}
