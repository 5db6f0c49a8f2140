/// What the last stage returns for one sequence: per read position, the chosen token and its
/// softmax probability. Full logits never leave the stage.
public struct Readout: Sendable, Equatable {
    public var positions: [Int]
    public var tokens: [Int]
    public var confidences: [Float]
    /// `P(end-of-text)` per position; empty unless requested.
    public var eosProbabilities: [Float]
    /// `topK` tokens per position, most likely first; empty unless requested.
    public var topTokens: [Int]
    public var topProbabilities: [Float]

    public init(
        positions: [Int], tokens: [Int], confidences: [Float], eosProbabilities: [Float] = [],
        topTokens: [Int] = [], topProbabilities: [Float] = []
    ) {
        self.positions = positions
        self.tokens = tokens
        self.confidences = confidences
        self.eosProbabilities = eosProbabilities
        self.topTokens = topTokens
        self.topProbabilities = topProbabilities
    }
}

extension Readout {
    /// What is wrong with this readout as the answer to `request` (nil: nothing): one entry per
    /// requested position in order, tokens inside the vocabulary, probabilities finite in
    /// [0, 1], top-k lists of the requested size. A pipeline's reply is checked with this
    /// before any of it is used.
    public func problem(answering request: SequenceForward, vocabulary: Int) -> String? {
        let n = request.readPositions.count
        guard positions == request.readPositions else {
            return "positions \(positions.prefix(8)) (\(positions.count)) differ from the \(n) requested"
        }
        guard tokens.count == n, confidences.count == n else {
            return "\(tokens.count) tokens and \(confidences.count) confidences for \(n) positions"
        }
        if let bad = tokens.first(where: { $0 < 0 || $0 >= vocabulary }) {
            return "token \(bad) is outside the vocabulary (\(vocabulary))"
        }
        if let bad = confidences.first(where: { !($0 >= 0 && $0 <= 1) }) { return "confidence \(bad) is not a probability" }
        guard eosProbabilities.isEmpty || eosProbabilities.count == n else {
            return "\(eosProbabilities.count) end-of-text probabilities for \(n) positions"
        }
        if let bad = eosProbabilities.first(where: { !($0 >= 0 && $0 <= 1) }) {
            return "end-of-text probability \(bad) is not a probability"
        }
        let k = request.topK
        guard topTokens.count == n * k, topProbabilities.count == n * k else {
            return "\(topTokens.count) top-k tokens and \(topProbabilities.count) probabilities for \(n) positions x \(k)"
        }
        if let bad = topTokens.first(where: { $0 < 0 || $0 >= vocabulary }) {
            return "top-k token \(bad) is outside the vocabulary (\(vocabulary))"
        }
        if let bad = topProbabilities.first(where: { !($0 >= 0 && $0 <= 1) }) {
            return "top-k probability \(bad) is not a probability"
        }
        return nil
    }
}
