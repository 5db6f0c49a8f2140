import Foundation
import L2PDDecoding
import L2PDFilter

/// One generation, whatever door it came in by: `l2pd generate` builds it from flags, the
/// coordinator's nng socket decodes it from JSON (`{"prompt": ..., "raw": ..., "gen_length": ...}`,
/// decoding fields flat beside the prompt), the HTTP API maps the OpenAI bodies into it.
/// `validated` checks every field once, before any work starts.
public struct GenerationRequest: Sendable, Codable, Equatable {
    public var prompt: String
    /// Send the prompt as is, without the LLaDA-Instruct chat format.
    public var raw: Bool? = nil
    public var parameters = DecodingParameters()
    /// Seconds the request may take from its arrival, queueing included (nil: the server's
    /// limit, which also caps it); past it the request fails as timed out and frees its caches.
    public var timeout: Double? = nil

    /// Largest `timeout` accepted, in seconds (a day).
    public static let maxTimeout = 86_400.0

    public init(prompt: String, raw: Bool? = nil, parameters: DecodingParameters = DecodingParameters(), timeout: Double? = nil) {
        self.prompt = prompt
        self.raw = raw
        self.parameters = parameters
        self.timeout = timeout
    }

    enum CodingKeys: String, CodingKey { case prompt, raw, timeout }

    public init(from decoder: any Swift.Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        prompt = try container.decode(String.self, forKey: .prompt)
        raw = try container.decodeIfPresent(Bool.self, forKey: .raw)
        timeout = try container.decodeIfPresent(Double.self, forKey: .timeout)
        parameters = try DecodingParameters(from: decoder)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(prompt, forKey: .prompt)
        try container.encodeIfPresent(raw, forKey: .raw)
        try container.encodeIfPresent(timeout, forKey: .timeout)
        try parameters.encode(to: encoder)
    }

    /// Decoder options after every check that needs no tokenizer: the prompt's size in bytes,
    /// the timeout, then each decoding field. The prompt's token count is checked by the decoder.
    public func validated(limits: RequestLimits, maxSequenceLength: Int, filter: FilterNetwork?) throws -> GenerationOptions {
        try limits.check(prompt: prompt)
        if let timeout, !(timeout > 0 && timeout <= Self.maxTimeout) {
            throw RequestError("\"timeout\" must be a number of seconds above 0 and at most \(Int(Self.maxTimeout)), not \(timeout)")
        }
        return try parameters.options(maxSequenceLength: maxSequenceLength, filter: filter)
    }
}

/// Bounds on what one request may ask, enforced before any expensive work.
public struct RequestLimits: Sendable, Equatable {
    /// Largest prompt in UTF-8 bytes; checked before tokenizing.
    public var maxPromptBytes: Int
    /// Largest request body (HTTP) or message (nng) in bytes; checked before JSON decoding.
    public var maxBodyBytes: Int

    public init(maxPromptBytes: Int = 64 << 10, maxBodyBytes: Int? = nil) {
        self.maxPromptBytes = max(1, maxPromptBytes)
        // Room for the prompt escaped in JSON (up to 6 bytes per byte) and the other fields,
        // saturating at Int.max for an unbounded prompt.
        let (escaped, overflow) = self.maxPromptBytes.multipliedReportingOverflow(by: 6)
        let (body, overflowAgain) = escaped.addingReportingOverflow(16 << 10)
        self.maxBodyBytes = max(1, maxBodyBytes ?? (overflow || overflowAgain ? Int.max : body))
    }

    /// No bound on the prompt (the command line, where the user runs the model themselves).
    public static let unbounded = RequestLimits(maxPromptBytes: .max)

    public func check(prompt: String) throws {
        let bytes = prompt.utf8.count
        guard bytes <= maxPromptBytes else {
            throw RequestError("the prompt has \(bytes) bytes; this server accepts at most \(maxPromptBytes)")
        }
        guard prompt.contains(where: { !$0.isWhitespace }) else { throw RequestError("the prompt is empty") }
    }
}

/// A request field that makes no sense.
public struct RequestError: ClassifiedError, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
    public var errorClass: ErrorClass { .invalidRequest }
}

extension RequestError {
    /// A JSON body that did not decode, described in one sentence naming the field.
    public init(decoding error: any Error) {
        guard let error = error as? DecodingError else {
            self.init("the body is not valid JSON")
            return
        }
        func path(_ keys: [any CodingKey]) -> String {
            let names = keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
            return names.isEmpty ? "the body" : "\"\(names.joined(separator: "."))\""
        }
        switch error {
        case .typeMismatch(let type, let context):
            self.init("\(path(context.codingPath)) must be \(Self.describe(type))")
        case .valueNotFound(let type, let context):
            self.init("\(path(context.codingPath)) must be \(Self.describe(type)), not null")
        case .keyNotFound(let key, let context):
            self.init("\(path(context.codingPath + [key])) is required")
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty {
                self.init("the body is not valid JSON, or holds a number too large for its field, or is nested too deeply")
            } else {
                self.init("\(path(context.codingPath)) is out of range or malformed")
            }
        @unknown default:
            self.init("the body could not be read")
        }
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is Bool.Type: "true or false"
        case is Int.Type, is UInt64.Type: "an integer"
        case is Float.Type, is Double.Type: "a number"
        case is String.Type: "a string"
        default: "of type \(type)"
        }
    }
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
