import L2PDStageIO

/// Message kinds, the header's `kind` byte.
public enum MessageKind: UInt8, Sendable, CaseIterable {
    case hello = 1
    case shardAssignment = 2
    case forward = 3
    case hiddenStates = 4
    case readout = 5
    case releaseCache = 6
    case ping = 7
    case pong = 8
    case error = 9
    case chainedForward = 10
}

/// Who sent a `hello`.
public enum PeerRole: UInt8, Sendable, CaseIterable {
    case coordinator = 1
    case worker = 2
    /// A worker dialling the next stage of a chained pass.
    case stage = 3
}

/// The first frame on a connection, in both directions.
public struct Hello: Sendable, Equatable {
    /// The highest protocol version the sender speaks (>= 1).
    public var protocolVersion: UInt16
    public var role: PeerRole
    /// A worker's proof of the model and cluster secret (a coordinator sends 0); see `IdentityProof`.
    public var modelFingerprint: UInt64
    /// The sender's fresh nonce for this handshake (0: none).
    public var nonce: UInt64
    /// Free-form name for logs, at most `maxTextBytes` UTF-8 bytes.
    public var name: String

    public init(
        protocolVersion: UInt16 = ProtocolLimits.version, role: PeerRole, modelFingerprint: UInt64, nonce: UInt64 = 0, name: String = ""
    ) {
        self.protocolVersion = protocolVersion
        self.role = role
        self.modelFingerprint = modelFingerprint
        self.nonce = nonce
        self.name = name
    }
}

/// Tells a worker which layers it runs and where its output goes.
public struct ShardAssignment: Sendable, Equatable {
    public var modelFingerprint: UInt64
    public var totalLayers: Int
    public var layers: Range<Int>
    /// Must equal `layers.lowerBound == 0`.
    public var embeds: Bool
    /// Must equal `layers.upperBound == totalLayers`.
    public var readsOut: Bool
    /// The next stage's nng URL; empty on the last stage means "answer the coordinator".
    public var nextStageURL: String

    public init(modelFingerprint: UInt64, totalLayers: Int, layers: Range<Int>, nextStageURL: String) {
        self.modelFingerprint = modelFingerprint
        self.totalLayers = totalLayers
        self.layers = layers
        self.embeds = layers.lowerBound == 0
        self.readsOut = layers.upperBound == totalLayers
        self.nextStageURL = nextStageURL
    }
}

/// Hidden states `[rows, dModel]`, row-major: the computed positions of each sequence of the
/// batch, concatenated in batch order.
public struct HiddenTensor: Sendable, Equatable {
    public var dModel: Int
    public var values: [Float]

    public init(dModel: Int, values: [Float]) {
        self.dModel = dModel
        self.values = values
    }

    public var rows: Int { dModel > 0 ? values.count / dModel : 0 }
}

/// The input tensor of a `forward`: token ids for the first stage, hidden states otherwise.
public enum ForwardInput: Sendable, Equatable {
    case tokens([Int])
    case hidden(HiddenTensor)

    /// The same values as the model's stage input.
    public var stageInput: StageInput {
        switch self {
        case .tokens(let tokens): .tokens(tokens)
        case .hidden(let hidden): .hidden(hidden.values)
        }
    }
}

/// A forward request from the coordinator.
public struct ForwardRequest: Sendable, Equatable {
    public var batch: [SequenceForward]
    public var input: ForwardInput

    public init(batch: [SequenceForward], input: ForwardInput) {
        self.batch = batch
        self.input = input
    }
}

/// A forward pass that travels on by itself: the receiving stage runs its layers on `forward`
/// and sends its output on as a `chained_forward` to `route[0]` with the rest of the route; with
/// an empty route it answers the coordinator (`readout` on the last stage, `hidden_states`
/// otherwise). Every frame of the pass carries the coordinator's request id.
public struct ChainedForward: Sendable, Equatable {
    /// The URLs of the stages still to run, in order (at most `ProtocolLimits.maxRouteHops`).
    public var route: [String]
    public var forward: ForwardRequest

    public init(route: [String], forward: ForwardRequest) {
        self.route = route
        self.forward = forward
    }
}

/// A stage's output passed to the next stage, with the batch it ran.
public struct HiddenStates: Sendable, Equatable {
    public var batch: [SequenceForward]
    public var hidden: HiddenTensor

    public init(batch: [SequenceForward], hidden: HiddenTensor) {
        self.batch = batch
        self.hidden = hidden
    }
}

/// One sequence's readout, named by its sequence id.
public struct SequenceReadout: Sendable, Equatable {
    public var sequenceID: UInt64
    public var readout: Readout

    public init(sequenceID: UInt64, readout: Readout) {
        self.sequenceID = sequenceID
        self.readout = readout
    }
}

/// The last stage's answer: one readout per sequence of the batch, in batch order.
public struct ReadoutReply: Sendable, Equatable {
    public var sequences: [SequenceReadout]

    public init(sequences: [SequenceReadout]) {
        self.sequences = sequences
    }
}

/// A worker's or the coordinator's error report. `code` is kept raw so codes a later version
/// adds still decode; `knownCode` names the ones this version defines.
public struct ErrorReport: Sendable, Equatable {
    public var code: UInt16
    public var text: String

    public init(code: UInt16, text: String) {
        self.code = code
        self.text = text
    }

    public init(_ code: ProtocolErrorCode, text: String) {
        self.init(code: code.rawValue, text: text)
    }

    public init(_ error: ProtocolError) {
        self.init(code: error.code.rawValue, text: error.detail)
    }

    public var knownCode: ProtocolErrorCode? { ProtocolErrorCode(rawValue: code) }
}

/// Every message kind with its payload.
public enum Message: Sendable, Equatable {
    case hello(Hello)
    case shardAssignment(ShardAssignment)
    case forward(ForwardRequest)
    case hiddenStates(HiddenStates)
    case readout(ReadoutReply)
    case releaseCache([UInt64])
    case ping(nonce: UInt64)
    /// A worker's answer to a ping: the ping's nonce and what it holds now (0 when nothing is
    /// assigned): bytes of weights in their held dtype, bytes of kept K/V caches.
    case pong(nonce: UInt64, weightBytes: UInt64 = 0, cacheBytes: UInt64 = 0)
    case error(ErrorReport)
    case chainedForward(ChainedForward)

    public var kind: MessageKind {
        switch self {
        case .hello: .hello
        case .shardAssignment: .shardAssignment
        case .forward: .forward
        case .hiddenStates: .hiddenStates
        case .readout: .readout
        case .releaseCache: .releaseCache
        case .ping: .ping
        case .pong: .pong
        case .error: .error
        case .chainedForward: .chainedForward
        }
    }
}

/// One nng message: the header's request id and step, and the message.
public struct Frame: Sendable, Equatable {
    public var requestID: UInt64
    public var step: UInt32
    public var message: Message

    public init(requestID: UInt64, step: UInt32 = 0, message: Message) {
        self.requestID = requestID
        self.step = step
        self.message = message
    }
}

/// The fixed 24-byte header.
public struct FrameHeader: Sendable, Equatable {
    public var kind: MessageKind
    public var flags: UInt8
    public var requestID: UInt64
    public var step: UInt32
    public var payloadLength: Int
}
