/// The input of a stage: token ids on the first stage, hidden states on the others. Rows are
/// the `computed` positions of each sequence of the batch, concatenated in batch order.
public enum StageInput: Sendable {
    case tokens([Int])
    /// `rows * dModel` floats, row-major.
    case hidden([Float])
}
