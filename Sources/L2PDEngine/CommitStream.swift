import L2PDDecoding
import L2PDTokenizer

/// Turns decoding steps into text deltas for streaming clients: text is sent once a block of
/// the answer is committed from its start (diffusion commits out of order, so only a prefix
/// with no masked position left can be shown), and the rest once end-of-text is committed.
public struct CommitStream: Sendable {
    public let tokenizer: Tokenizer
    public let maskID: Int
    public let endOfTextID: Int
    public let blockLength: Int
    private var sentBlocks = 0
    private var sentText = ""
    public private(set) var finished = false

    public init(tokenizer: Tokenizer, maskID: Int, endOfTextID: Int, blockLength: Int) {
        self.tokenizer = tokenizer
        self.maskID = maskID
        self.endOfTextID = endOfTextID
        self.blockLength = max(1, blockLength)
    }

    /// The text that became final with this step, if a block (or the answer) completed.
    public mutating func update(_ event: StepEvent) -> String? {
        guard !finished else { return nil }
        let prefix = event.answer.prefix { $0 != maskID }
        let useful = prefix.prefix { $0 != endOfTextID }
        let ended = useful.count < prefix.count || prefix.count >= event.answerLength
        let blocks = prefix.count / blockLength
        guard ended || blocks > sentBlocks else { return nil }
        sentBlocks = blocks
        finished = ended
        let text = tokenizer.decode(Array(useful), skipSpecialTokens: true)
        guard text.hasPrefix(sentText) else { return nil }  // never resend what the client has
        let delta = String(text.dropFirst(sentText.count))
        sentText = text
        return delta
    }
}
