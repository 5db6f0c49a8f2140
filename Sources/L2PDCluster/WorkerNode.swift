import Foundation
import L2PDModel
import L2PDProtocol
import L2PDTransport

/// A worker process's role: listens for one coordinator, takes the layer range it is
/// assigned, loads only those weights, keeps per-request K/V caches for its layers, and
/// answers every frame (hidden states, or the compact readout on the last stage). Until a
/// coordinator has proven the model and the cluster secret in the handshake, only `hello` and
/// `shard_assignment` are answered. Frames are handled one at a time, in order, on a queue of
/// their own (never Swift's cooperative pool); `ping` is answered at once by the receiving
/// thread, so a worker busy with a long forward pass still shows it is alive. A malformed frame
/// gets an `error` frame back and never stops the loop.
public final class WorkerNode: @unchecked Sendable {
    // @unchecked: the handshake and stage state is touched only on `queue`, one frame at a
    // time; `authenticatedConnection` and `held` are guarded by `lock`.
    public let transport: any FrameTransport
    public let name: String
    private let checkpoint: Checkpoint
    private let fingerprint: UInt64
    private let secret: [UInt8]
    private let threads: Int
    private var stage: Stage?
    private var assigned: Range<Int>?
    /// The nonces of the handshake under way: the coordinator's (from its `hello`) and this
    /// worker's (sent back with the proof); the `shard_assignment` must prove both.
    private var challenge: UInt64 = 0
    private var nonce: UInt64 = 0
    /// The connection whose coordinator completed the handshake (-1: none yet).
    private var authenticatedConnection = -1
    /// Bytes of weights and of K/V caches the stage held after the last queued frame, for
    /// pongs answered off the queue.
    private var held: (weights: UInt64, cache: UInt64) = (0, 0)
    private let lock = NSLock()
    private let queue = DispatchQueue(label: "l2pd.worker.frames", qos: .userInitiated)
    private let log: @Sendable (String) -> Void
    private let cacheLimits: CacheLimits
    private let weightFormat: WeightFormat

    /// Listens on `url` over nng.
    public convenience init(
        listen url: String, modelDirectory: URL, threads: Int, cacheLimits: CacheLimits = CacheLimits(),
        clusterSecret: String? = nil, weights: WeightFormat = .native, tls: TLSConfiguration? = nil,
        log: @escaping @Sendable (String) -> Void
    ) throws {
        try self.init(
            transport: try PairSocket.listen(url, maxMessageBytes: ProtocolLimits.maxFrameBytes, tls: tls), modelDirectory: modelDirectory,
            threads: threads, cacheLimits: cacheLimits, clusterSecret: clusterSecret, weights: weights, log: log)
    }

    /// Serves over `transport` (an nng socket, or an in-memory link in tests). With a
    /// `clusterSecret`, only a coordinator that proves the same secret is served.
    public init(
        transport: any FrameTransport, modelDirectory: URL, threads: Int, cacheLimits: CacheLimits = CacheLimits(),
        clusterSecret: String? = nil, weights: WeightFormat = .native, log: @escaping @Sendable (String) -> Void
    ) throws {
        self.cacheLimits = cacheLimits
        self.weightFormat = weights
        checkpoint = try Checkpoint(directory: modelDirectory)
        fingerprint = try ModelFingerprint.of(directory: modelDirectory)
        secret = Array((clusterSecret ?? "").utf8)
        self.transport = transport
        name = transport.url
        self.threads = threads
        self.log = log
    }

    /// Serves frames until the transport is closed (cancelling the calling task closes it).
    public func serve() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (finished: CheckedContinuation<Void, Never>) in
                receiveNext(finished: finished)
            }
        } onCancel: {
            transport.close()
        }
    }

    /// Whether the peer connected now completed the handshake.
    private var isAuthenticated: Bool {
        lock.withLock { authenticatedConnection == transport.connectionCount } && transport.isConnected
    }

    private func receiveNext(finished: CheckedContinuation<Void, Never>) {
        transport.receive { [self] result in
            switch result {
            case .success(let bytes):
                if bytes.count >= 7 && bytes[6] == MessageKind.ping.rawValue && isAuthenticated {
                    // Heartbeats skip the queue: a worker busy with a long pass is still alive.
                    if let reply = handle(bytes) { send(reply) }
                } else {
                    queue.async { [self] in
                        let reply = handle(bytes)
                        let stage = stage
                        let sizes = (UInt64(stage?.weights.byteCount ?? 0), UInt64(stage?.cacheByteCount ?? 0))
                        lock.withLock { held = sizes }
                        if let reply { send(reply) }
                    }
                }
                receiveNext(finished: finished)
            case .failure(let error as TransportError) where error.kind != .closed:
                log("receive failed: \(error)")
                DispatchQueue.global().asyncAfter(deadline: .now() + 0.01) { [self] in receiveNext(finished: finished) }
            case .failure:
                finished.resume()  // closed
            }
        }
    }

    private func send(_ reply: [UInt8]) {
        transport.send(reply, timeout: 5) { [log] error in
            if let error { log("reply dropped: \(error)") }
        }
    }

    /// Stops `serve`.
    public func close() { transport.close() }

    /// The reply to one frame, or nil when none is due (a malformed `error` frame).
    public func handle(_ bytes: [UInt8]) -> [UInt8]? {
        if bytes.count >= 7, let kind = MessageKind(rawValue: bytes[6]), kind != .hello, kind != .shardAssignment, kind != .error,
            !isAuthenticated
        {
            // Nothing but the handshake before the coordinator has proven itself.
            let identity = bytes.withUnsafeBytes { FrameHeader.replyIdentity(for: $0) }
            return encode(
                Frame(
                    requestID: identity.requestID, step: identity.step,
                    message: .error(ErrorReport(.notAuthenticated, text: "worker \(name): complete the handshake first"))))
        }
        let frame: Frame
        do {
            frame = try Frame.decode(bytes)
        } catch let error as ProtocolError {
            if bytes.count >= 7 && bytes[6] == MessageKind.error.rawValue { return nil }
            let identity = bytes.withUnsafeBytes { FrameHeader.replyIdentity(for: $0) }
            return encode(Frame(requestID: identity.requestID, step: identity.step, message: .error(ErrorReport(error))))
        } catch {
            return encode(Frame(requestID: 0, message: .error(ErrorReport(.internal, text: "\(error)"))))
        }
        func reply(_ message: Message) -> [UInt8]? {
            encode(Frame(requestID: frame.requestID, step: frame.step, message: message))
        }
        switch frame.message {
        case .hello(let hello):
            // Neither the fingerprint nor the secret leaves the worker: a coordinator's hello
            // carries its nonce, answered with this worker's nonce and a proof over both.
            guard hello.role == .coordinator, hello.nonce != 0 else {
                return reply(.hello(Hello(role: .worker, modelFingerprint: 0, name: describe())))
            }
            lock.withLock { authenticatedConnection = -1 }  // a new handshake starts
            challenge = hello.nonce
            nonce = IdentityProof.nonce()
            let proof = IdentityProof.worker(fingerprint: fingerprint, challenge: challenge, nonce: nonce, secret: secret)
            return reply(.hello(Hello(role: .worker, modelFingerprint: proof, nonce: nonce, name: describe())))
        case .shardAssignment(let assignment):
            let proven =
                challenge != 0
                && assignment.modelFingerprint
                    == IdentityProof.coordinator(fingerprint: fingerprint, challenge: challenge, nonce: nonce, secret: secret)
            let proof = IdentityProof.worker(fingerprint: fingerprint, challenge: challenge, nonce: nonce, secret: secret)
            (challenge, nonce) = (0, 0)  // each handshake's nonces prove one assignment
            guard proven else {
                log("refused a coordinator: its assignment does not prove this model and cluster secret")
                return reply(
                    .error(
                        ErrorReport(
                            .fingerprintMismatch,
                            text:
                                "worker \(name): the assignment does not prove the same model and cluster secret (send hello with a nonce first)"
                        )))
            }
            guard assignment.totalLayers == checkpoint.config.layers else {
                return reply(
                    .error(ErrorReport(.invalidValue, text: "model has \(checkpoint.config.layers) layers, not \(assignment.totalLayers)")))
            }
            if assigned != assignment.layers {
                do {
                    stage = nil  // the previous range's weights go before the new ones load
                    let start = ContinuousClock.now
                    let weights = try StageWeights(checkpoint: checkpoint, layers: assignment.layers, format: weightFormat)
                    weights.prefault()
                    let loaded = Stage(weights: weights, threads: threads)
                    loaded.cacheLimits = cacheLimits
                    stage = loaded
                    assigned = assignment.layers
                    let elapsed = (ContinuousClock.now - start).components
                    let seconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) * 1e-18
                    log(
                        String(
                            format:
                                "assigned layers %d..<%d: loaded in %.2f s, %.3f GiB of weights (%@ %@), K/V cache %.1f MiB per 1000 positions",
                            assignment.layers.lowerBound, assignment.layers.upperBound, seconds, Double(weights.byteCount) / 1_073_741_824,
                            weightFormat.rawValue, weights.dtypeDescription, Double(loaded.cacheBytes(length: 1000)) / 1_048_576))
                } catch {
                    stage = nil
                    assigned = nil
                    return reply(.error(ErrorReport(.internal, text: "cannot load layers: \(error)")))
                }
            } else {
                stage?.releaseAll()
            }
            lock.withLock { authenticatedConnection = transport.connectionCount }
            return reply(.hello(Hello(role: .worker, modelFingerprint: proof, name: describe())))
        case .forward(let request):
            guard let stage else { return reply(.error(ErrorReport(.notAssigned, text: "worker \(name) has no layer range yet"))) }
            do {
                switch try stage.forward(request.batch, input: request.input.stageInput) {
                case .hidden(let values):
                    return reply(
                        .hiddenStates(
                            HiddenStates(batch: request.batch, hidden: HiddenTensor(dModel: checkpoint.config.dModel, values: values))))
                case .readouts(let readouts):
                    let sequences = zip(request.batch, readouts).map { SequenceReadout(sequenceID: $0.sequenceID, readout: $1) }
                    return reply(.readout(ReadoutReply(sequences: sequences)))
                }
            } catch {
                return reply(.error(ErrorReport(.stageFailed, text: "\(error)")))
            }
        case .releaseCache(let ids):
            for id in ids { stage?.release(id) }
            return reply(.releaseCache(ids))
        case .ping(let nonce):
            let sizes = lock.withLock { held }
            return reply(.pong(nonce: nonce, weightBytes: sizes.weights, cacheBytes: sizes.cache))
        case .hiddenStates, .readout, .pong:
            return reply(.error(ErrorReport(.invalidValue, text: "a worker does not accept \(frame.message.kind) frames")))
        case .error(let report):
            log("peer reported error \(report.code): \(report.text)")
            return nil
        }
    }

    public var cachedSequenceCount: Int { stage?.cachedSequenceCount ?? 0 }

    private func describe() -> String {
        guard let assigned else { return "\(name) (unassigned)" }
        return "\(name) layers \(assigned.lowerBound)..<\(assigned.upperBound)"
    }

    private func encode(_ frame: Frame) -> [UInt8]? {
        do { return try frame.encode() } catch {
            log("cannot encode reply: \(error)")
            return try? Frame(requestID: frame.requestID, message: .error(ErrorReport(.internal, text: "reply not encodable"))).encode()
        }
    }
}

func hex(_ value: UInt64) -> String { String(format: "%016llx", value) }
