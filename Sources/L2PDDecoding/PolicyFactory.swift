import L2PDFilter

/// Builds policies from their command-line names.
public enum PolicyFactory {
    public static let names = ["baseline", "random", "threshold", "factor", "frechet", "learn2pd", "egp"]

    /// Settings a policy may read; each has the paper's default.
    public struct Settings: Sendable {
        public var threshold: Float = 0.9
        public var factor: Float = 1
        /// Margin of the Fréchet-profile rule (`frechet`).
        public var delta: Float = 0.25
        /// The Learn2PD filter (required by `learn2pd`).
        public var filter: FilterNetwork? = nil
        /// Acceptance threshold of the filter (nil: the filter file's own default).
        public var tau: Float? = nil
        public init() {}

        /// Sets the parameter `parameter(of:)` names.
        public mutating func set(_ parameter: String, _ value: Float) {
            switch parameter {
            case "threshold": threshold = value
            case "factor": factor = value
            case "delta": delta = value
            case "tau": tau = value
            default: preconditionFailure("no policy parameter '\(parameter)'")
            }
        }

        /// The value of the parameter `parameter(of:)` names (nil: tau left to the filter).
        public func value(of parameter: String) -> Float? {
            switch parameter {
            case "threshold": return threshold
            case "factor": return factor
            case "delta": return delta
            case "tau": return tau
            default: return nil
            }
        }
    }

    /// The one parameter a policy reads, as flags and JSON name it (`eval` sweeps it).
    public static func parameter(of name: String) -> String? {
        switch name {
        case "threshold": return "threshold"
        case "factor": return "factor"
        case "frechet": return "delta"
        case "learn2pd": return "tau"
        default: return nil
        }
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
        case "frechet":
            try validateDelta(settings.delta)
            return FrechetPolicy(delta: settings.delta)
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
        try validateDelta(settings.delta)
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

    static func validateDelta(_ value: Float) throws {
        // L_n - U_n lies in [-1, 1]: a delta outside it commits everything or one token a step.
        guard value.isFinite, value >= -1, value <= 1 else {
            throw GenerationError.invalidParameter(name: "delta", value: "\(value)", expected: "in [-1, 1]")
        }
    }

    static func validateTau(_ value: Float) throws {
        guard value.isFinite, value > 0, value < 1 else {
            throw GenerationError.invalidParameter(name: "tau", value: "\(value)", expected: "in (0, 1)")
        }
    }
}
