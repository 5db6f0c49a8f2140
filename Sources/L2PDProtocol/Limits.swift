/// Wire constants and limits of protocol version 1 (`proto/PROTOCOL.md` sections 2 and 7).
public enum ProtocolLimits {
    /// `L2PD` read as a little-endian `u32`.
    public static let magic: UInt32 = 0x4450_324C
    public static let version: UInt16 = 1
    public static let headerBytes = 24
    /// Header plus payload.
    public static let maxFrameBytes = (1 << 30) + (1 << 20)
    public static let maxTensorBytes = 1 << 30
    public static let maxSequences = 256
    /// Canvas lengths are at most this; positions are below it.
    public static let maxCanvasLength = 1 << 20
    /// Sum of the read counts of one frame.
    public static let maxReadPositions = 65_536
    public static let maxTopK = 256
    public static let maxDModel = 65_536
    public static let maxLayers = 65_536
    public static let maxReleaseIDs = 4_096
    public static let maxTextBytes = 4_096
    public static let maxRank = 4
    /// Stages a `chained_forward` may still name.
    public static let maxRouteHops = 64
    /// Tensor payloads start at frame offsets that are multiples of this.
    public static let payloadAlignment = 16
}

/// Element types of tensor descriptors.
public enum TensorDType: UInt8, Sendable, CaseIterable {
    case f32 = 1
    case i32 = 2
    case u8 = 3
    case f16 = 4
    case bf16 = 5

    public var byteWidth: Int {
        switch self {
        case .f32, .i32: 4
        case .u8: 1
        case .f16, .bf16: 2
        }
    }
}
