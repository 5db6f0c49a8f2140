import L2PDDecoding
import L2PDTokenizer

/// A conversation with the model: every turn sends the whole history in the LLaDA-Instruct
/// chat format, and the answer joins the history, as LLaDA's `chat.py` keeps appending turns.
public struct ChatSession: Sendable {
    public let generator: TextGenerator
    public private(set) var messages: [ChatMessage]
    private let system: String?

    public init(generator: TextGenerator, system: String? = nil) {
        self.generator = generator
        self.system = system
        messages = system.map { [ChatMessage(role: "system", content: $0)] } ?? []
    }

    /// The prompt the next turn sends for `user`.
    public func prompt(for user: String) -> String {
        ChatFormat.llaDAInstruct(messages: messages + [ChatMessage(role: "user", content: user)])
    }

    /// Answers `user` with the history so far; a turn that fails leaves the history as it was.
    public mutating func send(
        _ user: String, options: GenerationOptions, onStep: (@Sendable (StepEvent) -> Void)? = nil
    ) async throws -> TextGenerator.Output {
        let output = try await generator.generate(prompt(for: user), raw: true, options: options, onStep: onStep)
        messages.append(ChatMessage(role: "user", content: user))
        messages.append(ChatMessage(role: "assistant", content: output.text))
        return output
    }

    /// Forgets every turn (the system message stays).
    public mutating func reset() {
        messages = system.map { [ChatMessage(role: "system", content: $0)] } ?? []
    }
}
