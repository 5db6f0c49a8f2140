import Foundation
import L2PDDecoding
import L2PDEngine
import L2PDTokenizer

/// The OpenAI fields both completion routes read besides their prompt: `stream`, and
/// `max_tokens`, which stands for `gen_length` when that is absent; and the request's
/// `timeout` in seconds.
public struct CompletionOptions: Sendable, Codable, Equatable {
    public var stream: Bool? = nil
    public var maxTokens: Int? = nil
    public var timeout: Double? = nil

    public init(stream: Bool? = nil, maxTokens: Int? = nil, timeout: Double? = nil) {
        self.stream = stream
        self.maxTokens = maxTokens
        self.timeout = timeout
    }

    enum CodingKeys: String, CodingKey {
        case stream, timeout
        case maxTokens = "max_tokens"
    }

    /// The decoding parameters with `max_tokens` applied.
    func applied(to parameters: DecodingParameters) -> DecodingParameters {
        var p = parameters
        p.genLength = p.genLength ?? maxTokens
        return p
    }
}

/// `POST /v1/completions`: the prompt is sent as is (no chat format). Beside the OpenAI fields
/// it takes every decoding field of `DecodingParameters`, flat. Unknown fields are ignored;
/// known ones are strictly typed.
public struct CompletionBody: Sendable, Codable, Equatable {
    public var prompt: String
    public var options = CompletionOptions()
    public var parameters = DecodingParameters()

    public init(prompt: String, stream: Bool? = nil, parameters: DecodingParameters = DecodingParameters(), timeout: Double? = nil) {
        self.prompt = prompt
        self.options = CompletionOptions(stream: stream, timeout: timeout)
        self.parameters = parameters
    }

    enum CodingKeys: String, CodingKey { case prompt }

    public init(from decoder: any Swift.Decoder) throws {
        prompt = try decoder.container(keyedBy: CodingKeys.self).decode(String.self, forKey: .prompt)
        options = try CompletionOptions(from: decoder)
        parameters = try DecodingParameters(from: decoder)
    }

    public func encode(to encoder: any Swift.Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(prompt, forKey: .prompt)
        try options.encode(to: encoder)
        try parameters.encode(to: encoder)
    }

    public var request: GenerationRequest {
        GenerationRequest(prompt: prompt, raw: true, parameters: options.applied(to: parameters), timeout: options.timeout)
    }
}

/// `POST /v1/chat/completions`: the whole conversation (system, user and assistant messages)
/// in the LLaDA-Instruct chat format; the same extra fields as `CompletionBody`.
public struct ChatCompletionBody: Sendable, Codable, Equatable {
    public var messages: [ChatMessage]
    public var options = CompletionOptions()
    public var parameters = DecodingParameters()

    public init(
        messages: [ChatMessage], stream: Bool? = nil, parameters: DecodingParameters = DecodingParameters(), timeout: Double? = nil
    ) {
        self.messages = messages
        self.options = CompletionOptions(stream: stream, timeout: timeout)
        self.parameters = parameters
    }

    enum CodingKeys: String, CodingKey { case messages }

    public init(from decoder: any Swift.Decoder) throws {
        messages = try decoder.container(keyedBy: CodingKeys.self).decode([ChatMessage].self, forKey: .messages)
        options = try CompletionOptions(from: decoder)
        parameters = try DecodingParameters(from: decoder)
    }

    public func encode(to encoder: any Swift.Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(messages, forKey: .messages)
        try options.encode(to: encoder)
        try parameters.encode(to: encoder)
    }

    /// The conversation formatted as one raw prompt (so the prompt limits apply to all of it).
    public func request() throws -> GenerationRequest {
        if let odd = messages.first(where: { !ChatMessage.roles.contains($0.role) }) {
            throw RequestError("message role '\(odd.role.prefix(32))' is not one of system, user, assistant")
        }
        guard messages.last?.role == "user" else {
            throw RequestError("\"messages\" must end with a user message")
        }
        let prompt = ChatFormat.llaDAInstruct(messages: messages)
        return GenerationRequest(prompt: prompt, raw: true, parameters: options.applied(to: parameters), timeout: options.timeout)
    }
}
