import Foundation
import L2PDDecoding
import L2PDEngine

/// `POST /v1/completions`: the prompt is sent as is (no chat format). Beside the OpenAI fields
/// it takes every decoding field of `DecodingParameters`, flat; `max_tokens` stands for
/// `gen_length` when that is absent. Unknown fields are ignored; known ones are strictly typed.
public struct CompletionBody: Sendable, Codable, Equatable {
    public var prompt: String
    public var stream: Bool? = nil
    public var maxTokens: Int? = nil
    public var parameters = DecodingParameters()

    public init(prompt: String, stream: Bool? = nil, parameters: DecodingParameters = DecodingParameters()) {
        self.prompt = prompt
        self.stream = stream
        self.parameters = parameters
    }

    enum CodingKeys: String, CodingKey {
        case prompt, stream
        case maxTokens = "max_tokens"
    }

    public init(from decoder: any Swift.Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        prompt = try c.decode(String.self, forKey: .prompt)
        stream = try c.decodeIfPresent(Bool.self, forKey: .stream)
        maxTokens = try c.decodeIfPresent(Int.self, forKey: .maxTokens)
        parameters = try DecodingParameters(from: decoder)
    }

    public func encode(to encoder: any Swift.Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(prompt, forKey: .prompt)
        try c.encodeIfPresent(stream, forKey: .stream)
        try c.encodeIfPresent(maxTokens, forKey: .maxTokens)
        try parameters.encode(to: encoder)
    }

    public var request: GenerationRequest {
        var parameters = self.parameters
        parameters.genLength = parameters.genLength ?? maxTokens
        return GenerationRequest(prompt: prompt, raw: true, parameters: parameters)
    }
}

/// One message of a chat completion.
public struct ChatMessage: Sendable, Codable, Equatable {
    public var role: String
    public var content: String
    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// `POST /v1/chat/completions`: the last user message, in the LLaDA-Instruct chat format; the
/// same extra fields as `CompletionBody`.
public struct ChatCompletionBody: Sendable, Codable, Equatable {
    public var messages: [ChatMessage]
    public var stream: Bool? = nil
    public var maxTokens: Int? = nil
    public var parameters = DecodingParameters()

    public init(messages: [ChatMessage], stream: Bool? = nil, parameters: DecodingParameters = DecodingParameters()) {
        self.messages = messages
        self.stream = stream
        self.parameters = parameters
    }

    enum CodingKeys: String, CodingKey {
        case messages, stream
        case maxTokens = "max_tokens"
    }

    public init(from decoder: any Swift.Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        messages = try c.decode([ChatMessage].self, forKey: .messages)
        stream = try c.decodeIfPresent(Bool.self, forKey: .stream)
        maxTokens = try c.decodeIfPresent(Int.self, forKey: .maxTokens)
        parameters = try DecodingParameters(from: decoder)
    }

    public func encode(to encoder: any Swift.Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(messages, forKey: .messages)
        try c.encodeIfPresent(stream, forKey: .stream)
        try c.encodeIfPresent(maxTokens, forKey: .maxTokens)
        try parameters.encode(to: encoder)
    }

    public func request() throws -> GenerationRequest {
        let known = ["system", "user", "assistant"]
        if let odd = messages.first(where: { !known.contains($0.role) }) {
            throw RequestError("message role '\(odd.role.prefix(32))' is not one of system, user, assistant")
        }
        guard let last = messages.last(where: { $0.role == "user" }) else {
            throw RequestError("\"messages\" holds no user message")
        }
        var parameters = self.parameters
        parameters.genLength = parameters.genLength ?? maxTokens
        return GenerationRequest(prompt: last.content, raw: false, parameters: parameters)
    }
}
