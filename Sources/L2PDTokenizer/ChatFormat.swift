import Foundation

/// One message of a conversation.
public struct ChatMessage: Sendable, Codable, Equatable {
    public var role: String
    public var content: String
    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }

    public static let roles = ["system", "user", "assistant"]
}

/// Prompt templates, written out in code since there is no Jinja engine here.
public enum ChatFormat {
    /// LLaDA-8B-Instruct's chat template (its tokenizer_config.json) for a whole conversation:
    /// the start-of-text token, then each message as a header with its role and the content
    /// trimmed of surrounding whitespace, ending where the assistant's answer begins. A chat
    /// goes on by appending the answer as an assistant message and the next user message, as
    /// LLaDA's `chat.py` does.
    public static func llaDAInstruct(messages: [ChatMessage]) -> String {
        var text = "<|startoftext|>"
        for message in messages {
            text += "<|start_header_id|>\(message.role)<|end_header_id|>\n\n"
            text += message.content.trimmingCharacters(in: .whitespacesAndNewlines) + "<|eot_id|>"
        }
        return text + "<|start_header_id|>assistant<|end_header_id|>\n\n"
    }

    /// The template for one user turn.
    public static func llaDAInstruct(user: String) -> String {
        llaDAInstruct(messages: [ChatMessage(role: "user", content: user)])
    }
}
