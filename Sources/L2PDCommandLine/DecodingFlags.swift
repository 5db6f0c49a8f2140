import L2PDDecoding

/// The decoding flags every decoding command shares, declared once, and their one mapping into
/// `DecodingParameters` (which owns the defaults and validates). A flag left out stays nil.
public enum DecodingFlags {
    public static let specs: [OptionSpec] = [
        .option(
            "policy", "NAME", "Unmask policy: \(PolicyFactory.names.joined(separator: ", ")) (suffix +eotp allowed).",
            shown: DecodingParameters.defaultPolicy),
        .option("gen-length", "N", "Answer canvas length in tokens.", shown: "\(DecodingParameters.defaultGenLength)"),
        .option("block-length", "N", "Semi-autoregressive block length.", shown: "\(DecodingParameters.defaultBlockLength)"),
        .option(
            "steps", "N", "Total step budget, 1 to gen length (the baseline commits gen-length/steps tokens per step).", shown: "gen length"
        ),
        .option("cache", "MODE", "K/V cache: none, prefix or dual.", shown: DecodingParameters.defaultCache.rawValue),
        .flag("eotp", "End-of-text prediction: drop everything after a predicted end-of-text."),
        .option("eotp-gate", "P", "Only truncate when the end-of-text confidence is at least P, in [0, 1]."),
        .option("threshold", "TAU", "Confidence threshold of the threshold policy, in (0, 1].", shown: "0.9"),
        .option("factor", "F", "Factor of the factor policy, in (0, 1e6].", shown: "1.0"),
        .option("delta", "D", "Margin of the frechet policy (Fréchet lower bound minus error bound), in [-1, 1].", shown: "0.25"),
        .option("tau", "P", "Filter acceptance threshold of learn2pd, in (0, 1).", shown: "the filter's own"),
        .option("temperature", "T", "Gumbel sampling temperature, 0 to 100 (0: greedy).", shown: "0"),
        .option("seed", "N", "Seed for sampling and random remasking, 0 to 2^64-1.", shown: "0"),
    ]

    /// The parameters the flags give; each value is parsed strictly (an integer flag takes an
    /// integer, a number flag a finite number that fits a Float) and range-checked later by
    /// `DecodingParameters.options`, the same check every other door uses.
    public static func parameters(_ o: ParsedOptions) throws -> DecodingParameters {
        var p = DecodingParameters()
        p.policy = o.string("policy")
        p.genLength = try o.int("gen-length")
        p.blockLength = try o.int("block-length")
        p.steps = try o.int("steps")
        p.cache = o.string("cache")
        p.eotp = o.has("eotp") ? true : nil
        p.eotpGate = try float(o, "eotp-gate")
        p.threshold = try float(o, "threshold")
        p.factor = try float(o, "factor")
        p.delta = try float(o, "delta")
        p.tau = try float(o, "tau")
        p.temperature = try float(o, "temperature")
        if let text = o.string("seed") {
            guard let seed = UInt64(text) else { throw UsageError("--seed expects an integer from 0 to 2^64-1, got '\(text.prefix(40))'") }
            p.seed = seed
        }
        return p
    }

    static func float(_ o: ParsedOptions, _ name: String) throws -> Float? {
        guard let value = try o.double(name) else { return nil }
        guard abs(value) <= Double(Float.greatestFiniteMagnitude) else {
            throw UsageError("--\(name) is out of range, got \(value)")
        }
        return Float(value)
    }
}
