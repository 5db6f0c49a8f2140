import L2PDDecoding
import L2PDFilter

/// Everything a caller may ask of one generation, by name: what `l2pd generate` builds from its
/// flags and what a coordinator client sends as JSON. `options` turns it into decoder options.
public struct GenerationRequest: Sendable, Codable, Equatable {
    public var prompt: String
    public var raw: Bool? = nil
    public var policy: String? = nil
    public var gen_length: Int? = nil
    public var block_length: Int? = nil
    public var steps: Int? = nil
    public var cache: String? = nil
    public var eotp: Bool? = nil
    public var eotp_gate: Float? = nil
    public var threshold: Float? = nil
    public var factor: Float? = nil
    public var tau: Float? = nil
    public var temperature: Float? = nil
    public var seed: UInt64? = nil

    public init(prompt: String) { self.prompt = prompt }

    /// Decoder options; `filter` serves `learn2pd` when the request names no other.
    public func options(filter: FilterNetwork?) throws -> GenerationOptions {
        var o = GenerationOptions()
        o.genLength = gen_length ?? o.genLength
        o.blockLength = block_length ?? o.blockLength
        o.steps = steps
        if let cache {
            guard let mode = CacheMode(rawValue: cache) else {
                throw RequestError("unknown cache mode '\(cache)' (known: none, prefix, dual)")
            }
            o.cache = mode
        }
        let spec = PolicySpec(parsing: policy ?? "baseline")
        var settings = PolicyFactory.Settings()
        settings.threshold = threshold ?? settings.threshold
        settings.factor = factor ?? settings.factor
        settings.tau = tau
        settings.filter = filter
        o.policy = try PolicyFactory.make(spec.name, settings: settings)
        o.eotp = (eotp ?? false) || spec.eotp
        o.eotpGate = eotp_gate
        o.temperature = temperature ?? 0
        guard o.temperature >= 0 && o.temperature.isFinite else { throw RequestError("temperature must be at least 0") }
        o.seed = seed ?? 0
        return o
    }
}

/// A request field that makes no sense.
public struct RequestError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// What a generation returns to a client, with its statistics.
public struct GenerationReply: Sendable, Codable, Equatable {
    public var text: String
    public var tokens: [Int]
    public var nfe: Int
    public var positions: Int
    public var useful_tokens: Int
    public var tpf: Double
    public var tps: Double
    public var seconds: Double

    public init(_ output: TextGenerator.Output) {
        text = output.text
        tokens = output.tokens
        nfe = output.statistics.nfe
        positions = output.statistics.positions
        useful_tokens = output.statistics.usefulTokens
        tpf = output.statistics.tpf
        tps = output.statistics.tps
        seconds = output.statistics.seconds
    }
}
