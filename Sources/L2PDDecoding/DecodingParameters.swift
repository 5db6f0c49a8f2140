import L2PDFilter

/// The decoding fields of a generation request, as every door receives them (JSON keys in
/// snake_case; `nil` means the default). `options` validates all of them in one place and is
/// the only way from a request to `GenerationOptions`.
public struct DecodingParameters: Sendable, Codable, Equatable {
    public var policy: String? = nil
    public var genLength: Int? = nil
    public var blockLength: Int? = nil
    public var steps: Int? = nil
    public var cache: String? = nil
    public var eotp: Bool? = nil
    public var eotpGate: Float? = nil
    public var threshold: Float? = nil
    public var factor: Float? = nil
    public var delta: Float? = nil
    public var tau: Float? = nil
    public var temperature: Float? = nil
    public var seed: UInt64? = nil

    public init() {}

    enum CodingKeys: String, CodingKey {
        case policy, steps, cache, eotp, threshold, factor, delta, tau, temperature, seed
        case genLength = "gen_length"
        case blockLength = "block_length"
        case eotpGate = "eotp_gate"
    }

    /// The default configuration: the fastest whose accuracy stays within a point of the
    /// baseline's (README, "Default configuration", measured with `l2pd eval`).
    public static let defaultPolicy = "learn2pd+eotp"
    public static let defaultCache = CacheMode.none
    /// The default when the default policy needs a filter and the model has none.
    public static let fallbackPolicy = "threshold"
    public static let defaultGenLength = 256
    public static let defaultBlockLength = 32
    public static let defaultThreshold: Float = 0.9
    public static let defaultFactor: Float = 1
    public static let defaultDelta: Float = 0.25
    /// Largest sampling temperature accepted (beyond it sampling is uniform noise).
    public static let maxTemperature: Float = 100
    /// Largest factor accepted (beyond `block length + 1` every position commits anyway).
    public static let maxFactor: Float = 1e6

    /// Validated decoder options. `maxSequenceLength` is the model's context (prompt plus
    /// answer); `filter` serves `learn2pd`. Every field is checked, with a message naming it,
    /// before any work starts; the prompt's own length is checked once it is tokenized.
    public func options(maxSequenceLength: Int, filter: FilterNetwork?) throws -> GenerationOptions {
        var o = GenerationOptions()
        var spec = try PolicySpec(parsing: policy ?? Self.defaultPolicy)
        if policy == nil && spec.name == "learn2pd" && filter == nil {
            spec = PolicySpec(name: Self.fallbackPolicy, eotp: spec.eotp)
        }
        o.genLength = try Self.integer("gen_length", genLength ?? Self.defaultGenLength, in: 1...max(1, maxSequenceLength - 1))
        o.blockLength = try Self.integer("block_length", blockLength ?? Self.defaultBlockLength, in: 1...o.genLength)
        guard o.genLength % o.blockLength == 0 else {
            throw GenerationError.genLengthNotMultipleOfBlock(genLength: o.genLength, blockLength: o.blockLength)
        }
        if let steps {
            o.steps = try Self.integer("steps", steps, in: 1...o.genLength)
            let blocks = o.genLength / o.blockLength
            guard steps % blocks == 0 else { throw GenerationError.stepsNotMultipleOfBlocks(steps: steps, blocks: blocks) }
        }
        o.cache = Self.defaultCache
        if let cache {
            guard let mode = CacheMode(rawValue: cache) else {
                throw GenerationError.invalidParameter(
                    name: "cache", value: "'\(cache.prefix(32))'", expected: "one of none, prefix, dual")
            }
            o.cache = mode
        }
        o.eotp = (eotp ?? false) || spec.eotp
        o.eotpGate = try eotpGate.map { try Self.real("eotp_gate", $0, closed: 0...1, "between 0 and 1") }
        var settings = PolicyFactory.Settings()
        settings.threshold = threshold ?? Self.defaultThreshold
        settings.factor = factor ?? Self.defaultFactor
        settings.delta = delta ?? Self.defaultDelta
        settings.tau = tau
        settings.filter = filter
        // Each policy checks its own parameters; the others are still checked here, so a value
        // out of range is an error whichever policy the request names.
        try PolicyFactory.validate(settings)
        o.policy = try PolicyFactory.make(spec.name, settings: settings)
        if let learned = o.policy as? Learn2PDPolicy, learned.filter.blockLength != o.blockLength {
            throw GenerationError.filterBlockLength(filter: learned.filter.blockLength, blockLength: o.blockLength)
        }
        o.temperature = try Self.real(
            "temperature", temperature ?? 0, closed: 0...Self.maxTemperature, "between 0 and \(Int(Self.maxTemperature))")
        o.seed = seed ?? 0
        return o
    }

    static func integer(_ name: String, _ value: Int, in range: ClosedRange<Int>) throws -> Int {
        guard range.contains(value) else {
            throw GenerationError.invalidParameter(
                name: name, value: "\(value)", expected: "between \(range.lowerBound) and \(range.upperBound)")
        }
        return value
    }

    static func real(_ name: String, _ value: Float, closed range: ClosedRange<Float>, _ expected: String) throws -> Float {
        guard value.isFinite, range.contains(value) else {
            throw GenerationError.invalidParameter(name: name, value: "\(value)", expected: expected)
        }
        return value
    }
}
