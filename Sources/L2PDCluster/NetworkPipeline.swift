import Foundation
import L2PDDecoding
import L2PDModel
import L2PDProtocol
import L2PDStageIO
import L2PDTransport

/// The `Pipeline` of a cluster: the coordinator relays each forward pass through the workers
/// in layer order (tokens to the first, hidden states onwards, the readout back from the last).
/// A worker that (re)connects is greeted and assigned its layers before its next frame.
public final class NetworkPipeline: ServingPipeline, @unchecked Sendable {
    // @unchecked: mutable state (`assignedConnection`, counters, statistics) is guarded by `lock`.
    public let config: ModelConfig
    public let workers: [WorkerEndpoint]
    public let fingerprint: UInt64
    private let links: [FrameExchanger]
    private let timeout: Double
    private let lock = NSLock()
    private var assignedConnection: [Int]
    private var nextRequestID: UInt64 = 1
    private var wire = WireStatistics()
    private let assignments: [SingleFlight]

    /// Dials every worker over nng. `timeout`: seconds a stage may take for one frame before
    /// the request fails.
    public convenience init(config: ModelConfig, fingerprint: UInt64, workers: [WorkerEndpoint], timeout: Double = 60) throws {
        try LayerPlan.validate(workers.map(\.layers), layers: config.layers)
        let sockets = try workers.map { try PairSocket.dial($0.url, maxMessageBytes: ProtocolLimits.maxFrameBytes) }
        try self.init(config: config, fingerprint: fingerprint, workers: workers, transports: sockets, timeout: timeout)
    }

    /// Relays through `transports`, one per worker in layer order (nng sockets, or in-memory
    /// links in tests).
    public init(
        config: ModelConfig, fingerprint: UInt64, workers: [WorkerEndpoint], transports: [any FrameTransport], timeout: Double = 60
    ) throws {
        try LayerPlan.validate(workers.map(\.layers), layers: config.layers)
        precondition(transports.count == workers.count, "one transport per worker")
        self.config = config
        self.fingerprint = fingerprint
        self.workers = workers
        self.timeout = timeout
        links = transports.map { FrameExchanger($0, replyKey: NetworkPipeline.replyKey) }
        assignedConnection = Array(repeating: -1, count: workers.count)
        assignments = workers.map { _ in SingleFlight() }
        // A worker lost anywhere in the pipeline dooms every forward pass in flight (its caches
        // are gone): end their waits on every stage at once, not when a pass reaches it.
        for (j, transport) in transports.enumerated() {
            transport.onConnectionChange { [links, workers] event in
                guard event == .disconnected else { return }
                let error = ClusterError("worker \(j + 1) at \(workers[j].url) disconnected during the request")
                for link in links { link.failAll(error, onlyWatching: true) }
            }
        }
    }

    /// The request id of a reply frame (nil when it is too short to carry a header).
    private static let replyKey: @Sendable ([UInt8]) -> UInt64? = { frame in
        guard frame.count >= 16 else { return nil }
        return frame.withUnsafeBytes { FrameHeader.replyIdentity(for: $0).requestID }
    }

    public var statistics: WireStatistics { lock.withLock { wire } }
    public var workerCount: Int { workers.count }

    /// Workers with a live connection now.
    public var connectedWorkers: Int { links.filter(\.transport.isConnected).count }

    /// Greets and assigns every worker now (the coordinator's start-up check).
    public func connect() async throws {
        for i in workers.indices { try await ensureAssigned(i) }
    }

    public func forward(_ batch: [SequenceForward], tokens: [Int]) async throws -> [Readout] {
        var input = ForwardInput.tokens(tokens)
        for i in workers.indices { try await ensureAssigned(i) }
        let baseline = links.map(\.transport.disconnectionCount)
        for i in workers.indices {
            // A worker lost since the pass began (between two stages) dooms it too.
            if let j = links.indices.first(where: { links[$0].transport.disconnectionCount != baseline[$0] }) {
                throw ClusterError("worker \(j + 1) at \(workers[j].url) disconnected during the request")
            }
            let step = UInt32(clamping: batch.first?.sampling.step ?? 0)
            let reply = try await exchange(
                i, .forward(ForwardRequest(batch: batch, input: input)), step: step, counts: true, watching: true)
            switch reply {
            case .hiddenStates(let states) where i < workers.count - 1:
                let rows = batch.reduce(0) { $0 + $1.computed.count }
                guard states.hidden.dModel == config.dModel, states.hidden.values.count == rows * config.dModel else {
                    throw protocolError(i, "sent \(states.hidden.values.count) hidden values, expected \(rows) rows of \(config.dModel)")
                }
                input = .hidden(states.hidden)
            case .readout(let readout) where i == workers.count - 1:
                guard readout.sequences.count == batch.count else {
                    throw protocolError(i, "returned \(readout.sequences.count) readouts for a batch of \(batch.count)")
                }
                let byID = Dictionary(readout.sequences.map { ($0.sequenceID, $0.readout) }, uniquingKeysWith: { a, _ in a })
                return try batch.map {
                    guard let r = byID[$0.sequenceID] else {
                        throw protocolError(i, "returned no readout for sequence \($0.sequenceID)")
                    }
                    if let problem = r.problem(answering: $0, vocabulary: config.embeddingSize) {
                        throw protocolError(i, "sent a malformed readout for sequence \($0.sequenceID): \(problem)")
                    }
                    return r
                }
            default:
                throw protocolError(i, "answered a forward with \(reply.kind)")
            }
        }
        throw ClusterError("the cluster has no workers", class: .internalError)
    }

    /// A reply that breaks the protocol: fails this request, naming the worker.
    private func protocolError(_ i: Int, _ what: String) -> ClusterError {
        ClusterError("worker \(i + 1) at \(workers[i].url) \(what)", class: .internalError)
    }

    public func release(_ sequenceID: UInt64) async {
        for i in workers.indices where links[i].transport.isConnected {
            _ = try? await exchange(i, .releaseCache([sequenceID]), step: 0, counts: false, sendTimeout: 0.5, replyTimeout: 2)
        }
    }

    public func close() { links.forEach { $0.close() } }

    private func ensureAssigned(_ i: Int) async throws {
        let transport = links[i].transport
        let connection = transport.connectionCount
        let assigned = lock.withLock { assignedConnection[i] }
        let connected = transport.isConnected
        if connected && assigned == connection { return }
        if !connected && assigned >= 0 {
            // It was serving and went away: fail now rather than wait for a send timeout.
            throw ClusterError("worker \(i + 1) at \(workers[i].url) is disconnected (lost since its last request)")
        }
        // One handshake per worker at a time: concurrent forwards wait for the same one (a
        // second assignment would reset the worker's caches under another request).
        try await assignments[i].run { [self] in
            if transport.isConnected && lock.withLock({ assignedConnection[i] }) == transport.connectionCount { return }
            try await handshake(i)
        }
    }

    /// Proves both sides hold the same model without sending its fingerprint, then assigns the
    /// worker its layers: `hello` with a fresh challenge, answered by the worker's proof;
    /// `shard_assignment` carrying the coordinator's proof, answered by `hello`.
    private func handshake(_ i: Int) async throws {
        let worker = workers[i]
        var challenge: UInt64 = 0
        while challenge == 0 { challenge = UInt64.random(in: .min ... .max) }
        let expected = IdentityProof.worker(fingerprint: fingerprint, challenge: challenge)
        let refused = ClusterError(
            "worker \(i + 1) at \(worker.url) could not prove it holds model \(hex(fingerprint)) (another model, or not an l2pd worker)",
            class: .internalError)
        let greeting = Hello(role: .coordinator, modelFingerprint: challenge, name: "coordinator")
        guard case .hello(let hello) = try await exchange(i, .hello(greeting), step: 0, counts: false),
            hello.modelFingerprint == expected
        else { throw refused }
        let connection = links[i].transport.connectionCount
        let assignment = ShardAssignment(
            modelFingerprint: IdentityProof.coordinator(fingerprint: fingerprint, challenge: challenge), totalLayers: config.layers,
            layers: worker.layers, nextStageURL: i + 1 < workers.count ? workers[i + 1].url : "")
        guard case .hello(let accepted) = try await exchange(i, .shardAssignment(assignment), step: 0, counts: false),
            accepted.modelFingerprint == expected
        else { throw ClusterError("worker \(worker.url) did not accept its layers", class: .internalError) }
        lock.withLock { assignedConnection[i] = connection }
    }

    /// One frame to worker `i` and its reply; `error` frames become `ClusterError`s naming the worker.
    private func exchange(
        _ i: Int, _ message: Message, step: UInt32, counts: Bool, sendTimeout: Double = 2, replyTimeout: Double? = nil,
        watching: Bool = false
    ) async throws -> Message {
        let id = lock.withLock { () -> UInt64 in
            defer { nextRequestID += 1 }
            return nextRequestID
        }
        let bytes = try Frame(requestID: id, step: step, message: message).encode()
        let started = DispatchTime.now().uptimeNanoseconds
        let reply: [UInt8]
        do {
            reply = try await links[i].exchange(
                bytes, key: id, sendTimeout: sendTimeout, replyTimeout: replyTimeout ?? timeout, watching: watching)
        } catch let error as TransportError {
            let what: String
            switch error.kind {
            case .unreachable: what = "is unreachable (no connection within \(sendTimeout) s)"
            case .peerLost: what = "disconnected during the request"
            case .timeout: what = "did not answer within \(replyTimeout ?? timeout) s"
            case .closed: what = "is no longer served (the pipeline was closed)"
            case .nng: what = "failed: \(error.detail)"
            }
            throw ClusterError("worker \(i + 1) at \(workers[i].url) \(what)")
        }
        if counts {
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
            lock.withLock {
                wire.bytesSent += bytes.count
                wire.bytesReceived += reply.count
                wire.roundTripSeconds += elapsed
                if wire.stageSeconds.count < workers.count { wire.stageSeconds = Array(repeating: 0, count: workers.count) }
                wire.stageSeconds[i] += elapsed
                if i == workers.count - 1 { wire.forwards += 1 }
            }
        }
        let frame: Frame
        do { frame = try Frame.decode(reply) } catch {
            throw protocolError(i, "sent an undecodable frame: \(error)")
        }
        if case .error(let report) = frame.message {
            throw protocolError(
                i, "reported \(report.knownCode?.description ?? "error \(report.code)"): \(report.text)")
        }
        return frame.message
    }
}
