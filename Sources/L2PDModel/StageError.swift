/// A forward request a stage cannot serve. Each case names what was wrong.
public enum StageError: Error, Equatable, CustomStringConvertible {
    case inputKind(expected: String)
    case rowCount(expected: Int, found: Int)
    case tokenOutOfRange(token: Int, embeddingSize: Int)
    case sequenceTooLong(length: Int, maximum: Int)
    case invalidRange(sequenceID: UInt64, computed: Range<Int>, length: Int)
    case readPositionOutside(sequenceID: UInt64, position: Int, computed: Range<Int>)
    case missingCache(sequenceID: UInt64)
    case cacheTooShort(sequenceID: UInt64, cached: Int, length: Int)
    case duplicateSequence(sequenceID: UInt64)
    case cacheEvicted(sequenceID: UInt64, maxSequences: Int, maxBytes: Int)

    public var description: String {
        switch self {
        case .inputKind(let expected):
            return "stage expects \(expected) as input"
        case .rowCount(let expected, let found):
            return "stage input has \(found) rows, the batch computes \(expected)"
        case .tokenOutOfRange(let token, let size):
            return "token id \(token) is outside the embedding (\(size) rows)"
        case .sequenceTooLong(let length, let maximum):
            return "sequence of \(length) positions exceeds max_sequence_length \(maximum)"
        case .invalidRange(let id, let computed, let length):
            return "sequence \(id): computed range \(computed) is not valid for length \(length) under its cache directive"
        case .readPositionOutside(let id, let position, let computed):
            return "sequence \(id): read position \(position) is outside the computed range \(computed)"
        case .missingCache(let id):
            return "sequence \(id): no K/V cache to reuse (refresh it first)"
        case .cacheTooShort(let id, let cached, let length):
            return "sequence \(id): K/V cache holds \(cached) positions, the step needs \(length)"
        case .duplicateSequence(let id):
            return "sequence \(id) appears twice in one batch"
        case .cacheEvicted(let id, let sequences, let bytes):
            return
                "sequence \(id): its K/V cache was dropped to stay within \(sequences) cached sequences and \(bytes >> 20) MiB (least recently used first)"
        }
    }
}
