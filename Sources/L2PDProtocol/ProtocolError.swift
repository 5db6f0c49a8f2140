/// The error codes of `proto/PROTOCOL.md` section 7. Codes 1...14 come from decoding (and from
/// encoding values the protocol cannot carry); 32...39 are sent by workers in `error` frames.
public enum ProtocolErrorCode: UInt16, Sendable, CaseIterable, CustomStringConvertible {
    case badMagic = 1
    case unsupportedVersion = 2
    case unknownKind = 3
    case reservedNotZero = 4
    case truncated = 5
    case lengthMismatch = 6
    case frameTooLarge = 7
    case limitExceeded = 8
    case invalidUTF8 = 9
    case badTensor = 10
    case invalidRange = 11
    case readPositionOutside = 12
    case invalidValue = 13
    case duplicateSequence = 14

    case fingerprintMismatch = 32
    case notAssigned = 33
    case stageFailed = 34
    case busy = 35
    case `internal` = 36
    case notAuthenticated = 37
    case nextStageUnreachable = 38
    case chainUnsupported = 39

    /// The name used in the specification, e.g. `read_position_outside`.
    public var description: String {
        switch self {
        case .badMagic: "bad_magic"
        case .unsupportedVersion: "unsupported_version"
        case .unknownKind: "unknown_kind"
        case .reservedNotZero: "reserved_not_zero"
        case .truncated: "truncated"
        case .lengthMismatch: "length_mismatch"
        case .frameTooLarge: "frame_too_large"
        case .limitExceeded: "limit_exceeded"
        case .invalidUTF8: "invalid_utf8"
        case .badTensor: "bad_tensor"
        case .invalidRange: "invalid_range"
        case .readPositionOutside: "read_position_outside"
        case .invalidValue: "invalid_value"
        case .duplicateSequence: "duplicate_sequence"
        case .fingerprintMismatch: "fingerprint_mismatch"
        case .notAssigned: "not_assigned"
        case .stageFailed: "stage_failed"
        case .busy: "busy"
        case .internal: "internal"
        case .notAuthenticated: "not_authenticated"
        case .nextStageUnreachable: "next_stage_unreachable"
        case .chainUnsupported: "chain_unsupported"
        }
    }
}

/// A frame that cannot be decoded, or a message that cannot be encoded: the code to send back
/// in an `error` frame and a one-line explanation naming the offending field.
public struct ProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: ProtocolErrorCode
    public var detail: String

    public init(_ code: ProtocolErrorCode, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    public var description: String { "\(code) (\(code.rawValue)): \(detail)" }
}
