import Foundation
import L2PDModel
import L2PDProtocol
import L2PDTransport

/// A worker process's role: listens for its coordinator (and, on a second address, for the
/// stages before it in chained passes), takes the layer range it is assigned, loads only those weights, keeps
/// per-request K/V caches for its layers, and answers every frame: hidden states, or the
/// compact readout on the last stage. A chained pass goes on by itself: the worker sends its
/// hidden states straight to the next stage of the pass's route, and the last stage answers
/// the coordinator. Until a peer has proven the model and the cluster secret in a handshake,
/// only `hello` and `shard_assignment` are answered. Frames are handled one at a time, in order,
/// on a queue of their own (never Swift's cooperative pool); `ping` is answered at once by the
/// receiving thread, so a worker busy with a long forward pass still shows it is alive. A
/// malformed frame gets an `error` frame back and never stops the loop.
public final class WorkerNode: @unchecked Sendable {
    // @unchecked: the handshake and stage state is touched only on `queue`, one frame at a
    // time; `coordinator`, `held` and `nextStages` are guarded by `lock`.
    /// The link to the coordinator (one peer at a time).
    public let transport: any FrameTransport
    /// Where the stages before this one connect (many peers; nil: none can).
    public let stageTransport: (any FrameTransport)?
    public let name: String
    private let checkpoint: Checkpoint
    private let fingerprint: UInt64
    private let secret: [UInt8]
    private let threads: Int
    private var stage: Stage?
    private var assigned: Range<Int>?
    /// The socket a frame came on.
    enum Link: Sendable { case coordinator, stages }
    /// The coordinator's handshake under way (its connection and nonce, this worker's nonce),
    /// and those of stages before this one, by connection of the stage socket.
    private var coordinatorHandshake: (connection: Int, challenge: UInt64, nonce: UInt64)?
    private var stageHandshakes: [Int: (challenge: UInt64, nonce: UInt64)] = [:]
    /// The connection of the coordinator that completed the handshake (nil: none yet).
    private var coordinator: Int?
    /// Connections of the stage socket whose stage completed its handshake.
    private var upstream: Set<Int> = []
    /// Bytes of weights and of K/V caches the stage held after the last queued frame, for
    /// pongs answered off the queue.
    private var held: (weights: UInt64, cache: UInt64) = (0, 0)
    /// Links to the stages after this one, by URL.
    private var nextStages: [String: NextStageLink] = [:]
    private let dialNextStage: (@Sendable (String) throws -> any FrameTransport)?
    private let lock = NSLock()
    private let queue = DispatchQueue(label: "l2pd.worker.frames", qos: .userInitiated)
    private let log: @Sendable (String) -> Void
    private let cacheLimits: CacheLimits
    private let weightFormat: WeightFormat
    /// Seconds a next stage may take to take a frame (and to answer its handshake).
    private let nextStageTimeout = 5.0

    /// Listens on `url` over nng for its coordinator, and on `stageURL` (by default
    /// `StageAddress.derived(from: url)`) for the stages before it. Next stages are dialled
    /// over nng too; a `tls+tcp://` one with this worker's certificate, verified against its CA
    /// (`--tls-ca`).
    public convenience init(
        listen url: String, stageURL: String? = nil, modelDirectory: URL, threads: Int, cacheLimits: CacheLimits = CacheLimits(),
        clusterSecret: String? = nil, weights: WeightFormat = .native, tls: TLSConfiguration? = nil,
        log: @escaping @Sendable (String) -> Void
    ) throws {
        let files = tls?.files
        let coordinatorSocket = try PairSocket.listen(url, maxMessageBytes: ProtocolLimits.maxFrameBytes, tls: tls)
        var stageSocket: PairSocket?
        if let stageURL = stageURL ?? StageAddress.derived(from: url) {
            do {
                stageSocket = try PairSocket.listen(
                    stageURL, maxMessageBytes: ProtocolLimits.maxFrameBytes, tls: TLSConfiguration.isTLS(stageURL) ? tls : nil,
                    manyPeers: true)
            } catch {
                coordinatorSocket.close()
                throw TransportError(
                    kind: .nng, url: stageURL,
                    detail: "cannot listen for earlier stages (--stage-listen): \((error as? TransportError)?.detail ?? "\(error)")")
            }
        }
        try self.init(
            transport: coordinatorSocket, stageTransport: stageSocket,
            modelDirectory: modelDirectory, threads: threads, cacheLimits: cacheLimits, clusterSecret: clusterSecret, weights: weights,
            log: log,
            dialNextStage: { next in
                var client: TLSConfiguration?
                if TLSConfiguration.isTLS(next) {
                    guard let files, files.ca != nil else {
                        throw NextStageError(
                            "the next stage \(next) runs TLS, and this worker has no --tls-ca to verify it "
                                + "(start workers with --tls-ca for chained passes)", permanent: true)
                    }
                    client = try TLSConfiguration(files, role: .client)
                }
                return try PairSocket.dial(next, maxMessageBytes: ProtocolLimits.maxFrameBytes, tls: client)
            })
    }

    /// Serves its coordinator over `transport` and earlier stages over `stageTransport` (nng
    /// sockets, or in-memory links in tests). With a `clusterSecret`, only peers that prove the
    /// same secret are served. `dialNextStage` opens a link to another worker for chained passes
    /// (nil: this worker answers only passes that end at it).
    public init(
        transport: any FrameTransport, stageTransport: (any FrameTransport)? = nil, modelDirectory: URL, threads: Int,
        cacheLimits: CacheLimits = CacheLimits(),
        clusterSecret: String? = nil, weights: WeightFormat = .native, log: @escaping @Sendable (String) -> Void,
        dialNextStage: (@Sendable (String) throws -> any FrameTransport)? = nil
    ) throws {
        self.cacheLimits = cacheLimits
        self.weightFormat = weights
        checkpoint = try Checkpoint(directory: modelDirectory)
        fingerprint = try ModelFingerprint.of(directory: modelDirectory)
        secret = Array((clusterSecret ?? "").utf8)
        self.transport = transport
        self.stageTransport = stageTransport
        name = transport.url
        self.threads = threads
        self.log = log
        self.dialNextStage = dialNextStage
    }

    /// Serves frames until the transport is closed (cancelling the calling task closes it).
    public func serve() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (finished: CheckedContinuation<Void, Never>) in
                receiveNext(.stages, finished: nil)
                receiveNext(.coordinator, finished: finished)
            }
        } onCancel: {
            transport.close()
        }
        stageTransport?.close()
        let links = lock.withLock { () -> [NextStageLink] in
            defer { nextStages = [:] }
            return Array(nextStages.values)
        }
        links.forEach { $0.close() }
    }

    /// The connection of the authenticated coordinator, while it is open.
    private var coordinatorConnection: Int? {
        guard let c = lock.withLock({ coordinator }), transport.isOpen(c) else { return nil }
        return c
    }

    /// Receives the frames of one socket, one after another; the coordinator's loop ends
    /// `serve` when its socket closes.
    private func receiveNext(_ link: Link, finished: CheckedContinuation<Void, Never>?) {
        guard let source = link == .coordinator ? transport : stageTransport else { return }
        source.receiveFromPeer { [self] result in
            switch result {
            case .success(let received):
                let bytes = received.bytes
                if link == .coordinator && bytes.count >= 7 && bytes[6] == MessageKind.ping.rawValue
                    && received.connection == coordinatorConnection
                {
                    // Heartbeats skip the queue: a worker busy with a long pass is still alive.
                    perform(handle(received, on: link), on: link, from: received.connection)
                } else {
                    let work: @Sendable () -> Void = { [self] in
                        let actions = handle(received, on: link)
                        let stage = stage
                        let sizes = (UInt64(stage?.weights.byteCount ?? 0), UInt64(stage?.cacheByteCount ?? 0))
                        lock.withLock { held = sizes }
                        perform(actions, on: link, from: received.connection)
                    }
                    // The stage socket carries no heartbeats, so its reader may compute a pass
                    // itself (in turn with the queue's frames) instead of waking another thread.
                    if link == .stages { queue.sync(execute: work) } else { queue.async(execute: work) }
                }
                receiveNext(link, finished: finished)
            case .failure(let error as TransportError) where error.kind != .closed:
                log("receive failed: \(error)")
                DispatchQueue.global().asyncAfter(deadline: .now() + 0.01) { [self] in receiveNext(link, finished: finished) }
            case .failure:
                finished?.resume()  // closed
            }
        }
    }

    /// Where the frames a handled frame brings about go.
    enum Outgoing {
        /// Back on the connection the frame came on.
        case reply([UInt8])
        /// To the coordinator (the end of a chained pass, or its failure).
        case coordinator([UInt8])
        /// On to the next stage of a chained pass; `failure` is sent to the coordinator if
        /// that stage cannot take it.
        case nextStage(url: String, frame: [UInt8], failure: @Sendable (NextStageError) -> [UInt8]?)
    }

    private func perform(_ actions: [Outgoing], on link: Link, from connection: Int) {
        for action in actions {
            switch action {
            case .reply(let bytes): send(bytes, on: link, connection)
            case .coordinator(let bytes):
                guard let c = coordinatorConnection else {
                    log("dropped the end of a chained pass: no coordinator is connected")
                    continue
                }
                send(bytes, on: .coordinator, c)
            case .nextStage(let url, let frame, let failure):
                let report: @Sendable (NextStageError) -> Void = { [self] problem in
                    log(problem.description)
                    if let bytes = failure(problem) { perform([.coordinator(bytes)], on: link, from: connection) }
                }
                let next: NextStageLink
                do { next = try nextStage(url) } catch {
                    report(error as? NextStageError ?? NextStageError("\(error)"))
                    continue
                }
                if next.sendIfGreeted(frame, timeout: nextStageTimeout, failed: { report(NextStageError($0)) }) { continue }
                Task { [timeout = nextStageTimeout] in
                    do { try await next.deliver(frame, timeout: timeout) } catch {
                        report(error as? NextStageError ?? NextStageError("\(error)"))
                    }
                }
            }
        }
    }

    /// The link to the stage at `url`, dialled on first use.
    private func nextStage(_ url: String) throws -> NextStageLink {
        if let link = lock.withLock({ nextStages[url] }) { return link }
        guard let dialNextStage else {
            throw NextStageError("worker \(name) cannot reach other stages (its link carries passes that end here only)", permanent: true)
        }
        let transport: any FrameTransport
        do { transport = try dialNextStage(url) } catch let error as NextStageError { throw error } catch {
            throw NextStageError("cannot dial the next stage at \(url): \(error)", permanent: true)
        }
        let link = NextStageLink(transport: transport, fingerprint: fingerprint, secret: secret, name: describe())
        let kept = lock.withLock { () -> NextStageLink? in
            if let existing = nextStages[url] { return existing }
            guard nextStages.count < 256 else { return nil }  // bounded, though no real cluster comes near
            nextStages[url] = link
            return link
        }
        if kept !== link { link.close() }
        guard let kept else { throw NextStageError("worker \(name) already holds links to 256 next stages; \(url) is one too many") }
        return kept
    }

    private func send(_ reply: [UInt8], on link: Link, _ connection: Int) {
        guard let target = link == .coordinator ? transport : stageTransport else { return }
        target.send(reply, on: connection, timeout: 5) { [log] error in
            if let error { log("reply dropped: \(error)") }
        }
    }

    /// Stops `serve`.
    public func close() {
        transport.close()
        stageTransport?.close()
    }

    /// Whether `connection` of `link` may send a frame of `kind` now: on the stage socket a
    /// proven stage sends chained passes and nothing else but its handshake.
    private func allows(_ kind: MessageKind, on link: Link, from connection: Int) -> Bool {
        switch (link, kind) {
        case (_, .hello), (_, .error), (.coordinator, .shardAssignment): return true
        case (.stages, .chainedForward): return upstream.contains(connection)
        case (.stages, _): return false
        case (.coordinator, _): return connection == coordinatorConnection
        }
    }

    /// What to send for one received frame: nothing (a malformed `error` frame), a reply, or a
    /// chained pass's next frame.
    func handle(_ received: PeerFrame, on link: Link) -> [Outgoing] {
        let bytes = received.bytes
        let connection = received.connection
        if bytes.count >= 7, let kind = MessageKind(rawValue: bytes[6]), !allows(kind, on: link, from: connection) {
            // Nothing but the handshake before the peer has proven itself.
            let identity = bytes.withUnsafeBytes { FrameHeader.replyIdentity(for: $0) }
            return encode(
                Frame(
                    requestID: identity.requestID, step: identity.step,
                    message: .error(ErrorReport(.notAuthenticated, text: "worker \(name): complete the handshake first")))
            ).map { [.reply($0)] } ?? []
        }
        let frame: Frame
        do {
            frame = try Frame.decode(bytes)
        } catch let error as ProtocolError {
            if bytes.count >= 7 && bytes[6] == MessageKind.error.rawValue { return [] }
            let identity = bytes.withUnsafeBytes { FrameHeader.replyIdentity(for: $0) }
            return encode(Frame(requestID: identity.requestID, step: identity.step, message: .error(ErrorReport(error))))
                .map { [.reply($0)] } ?? []
        } catch {
            return encode(Frame(requestID: 0, message: .error(ErrorReport(.internal, text: "\(error)")))).map { [.reply($0)] } ?? []
        }
        func reply(_ message: Message) -> [Outgoing] {
            encode(Frame(requestID: frame.requestID, step: frame.step, message: message)).map { [.reply($0)] } ?? []
        }
        switch frame.message {
        case .hello(let hello):
            return reply(greet(hello, on: link, connection))
        case .shardAssignment(let assignment):
            return reply(assign(assignment, on: connection))
        case .chainedForward(let chained):
            return forwardOn(chained, frame: frame, fromCoordinator: link == .coordinator)
        case .forward(let request):
            return reply(run(request))
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
            return []
        }
    }

    /// The stage's answer to one forward: hidden states, the readout on the last stage, or an
    /// `error`.
    private func run(_ request: ForwardRequest) -> Message {
        guard let stage else { return .error(ErrorReport(.notAssigned, text: "worker \(name) has no layer range yet")) }
        do {
            switch try stage.forward(request.batch, input: request.input.stageInput) {
            case .hidden(let values):
                return .hiddenStates(
                    HiddenStates(batch: request.batch, hidden: HiddenTensor(dModel: checkpoint.config.dModel, values: values)))
            case .readouts(let readouts):
                let sequences = zip(request.batch, readouts).map { SequenceReadout(sequenceID: $0.sequenceID, readout: $1) }
                return .readout(ReadoutReply(sequences: sequences))
            }
        } catch {
            return .error(ErrorReport(.stageFailed, text: "\(error)"))
        }
    }

    /// A chained pass: runs this stage, then sends the hidden states on to the route's next
    /// stage, or answers the coordinator when the route ends here. Failures go to the
    /// coordinator, which waits for the pass.
    private func forwardOn(_ chained: ChainedForward, frame: Frame, fromCoordinator: Bool) -> [Outgoing] {
        let answer = run(chained.forward)
        let toCoordinator = { (message: Message) -> [Outgoing] in
            guard let bytes = self.encode(Frame(requestID: frame.requestID, step: frame.step, message: message)) else { return [] }
            return [fromCoordinator ? .reply(bytes) : .coordinator(bytes)]
        }
        guard let next = chained.route.first, case .hiddenStates(let states) = answer else { return toCoordinator(answer) }
        let onward = Frame(
            requestID: frame.requestID, step: frame.step,
            message: .chainedForward(
                ChainedForward(
                    route: Array(chained.route.dropFirst()), forward: ForwardRequest(batch: states.batch, input: .hidden(states.hidden)))))
        guard let bytes = encode(onward) else { return toCoordinator(.error(ErrorReport(.internal, text: "hidden states not encodable"))) }
        let (requestID, step) = (frame.requestID, frame.step)
        return [
            .nextStage(
                url: next, frame: bytes,
                failure: { problem in
                    let code: ProtocolErrorCode = problem.permanent ? .chainUnsupported : .nextStageUnreachable
                    return try? Frame(
                        requestID: requestID, step: step, message: .error(ErrorReport(code, text: "worker \(self.name): \(problem)"))
                    ).encode()
                })
        ]
    }

    /// A `hello`: a coordinator or a stage before this one starts a handshake with its nonce,
    /// answered by this worker's nonce and proof; a stage then proves itself with a second
    /// `hello`. Neither the fingerprint nor the secret leaves the worker.
    private func greet(_ hello: Hello, on link: Link, _ connection: Int) -> Message {
        let unproven = Message.hello(Hello(role: .worker, modelFingerprint: 0, name: describe()))
        switch (link, hello.role) {
        case (.coordinator, .coordinator) where hello.nonce != 0:
            lock.withLock { if coordinator == connection { coordinator = nil } }  // a new handshake starts
            let nonce = IdentityProof.nonce()
            coordinatorHandshake = (connection, hello.nonce, nonce)
            let proof = IdentityProof.worker(fingerprint: fingerprint, challenge: hello.nonce, nonce: nonce, secret: secret)
            return .hello(Hello(role: .worker, modelFingerprint: proof, nonce: nonce, name: describe()))
        case (.stages, .stage) where hello.nonce != 0:
            upstream.remove(connection)
            if stageHandshakes.count >= 1024 { stageHandshakes = stageHandshakes.filter { stageTransport?.isOpen($0.key) == true } }
            let nonce = IdentityProof.nonce()
            stageHandshakes[connection] = (hello.nonce, nonce)
            let proof = IdentityProof.worker(fingerprint: fingerprint, challenge: hello.nonce, nonce: nonce, secret: secret)
            return .hello(Hello(role: .worker, modelFingerprint: proof, nonce: nonce, name: describe()))
        case (.stages, .stage) where hello.modelFingerprint != 0:
            // The stage's proof over both nonces of the handshake it started on this connection.
            guard let started = stageHandshakes.removeValue(forKey: connection),
                hello.modelFingerprint
                    == IdentityProof.stage(fingerprint: fingerprint, challenge: started.challenge, nonce: started.nonce, secret: secret)
            else {
                log("refused a stage: its hello does not prove this model and cluster secret")
                return .error(
                    ErrorReport(.fingerprintMismatch, text: "worker \(name): the stage does not prove the same model and cluster secret"))
            }
            if upstream.count >= 1024 { upstream = upstream.filter { stageTransport?.isOpen($0) == true } }
            upstream.insert(connection)
            let proof = IdentityProof.worker(fingerprint: fingerprint, challenge: started.challenge, nonce: started.nonce, secret: secret)
            return .hello(Hello(role: .worker, modelFingerprint: proof, name: describe()))
        case (.coordinator, .stage), (.stages, .coordinator):
            return .error(
                ErrorReport(
                    .invalidValue,
                    text: "worker \(name): coordinators connect at the worker's address, earlier stages at its stage address"))
        default:
            return unproven
        }
    }

    /// A coordinator's `shard_assignment`, which must prove both nonces of the handshake its
    /// `hello` started on this connection: loads the layers (or empties the caches of the same
    /// range) and answers `hello`.
    private func assign(_ assignment: ShardAssignment, on connection: Int) -> Message {
        // Each handshake's nonces prove one assignment.
        let started = coordinatorHandshake.flatMap { $0.connection == connection ? $0 : nil }
        coordinatorHandshake = nil
        guard let started,
            assignment.modelFingerprint
                == IdentityProof.coordinator(fingerprint: fingerprint, challenge: started.challenge, nonce: started.nonce, secret: secret)
        else {
            log("refused a coordinator: its assignment does not prove this model and cluster secret")
            return .error(
                ErrorReport(
                    .fingerprintMismatch,
                    text: "worker \(name): the assignment does not prove the same model and cluster secret (send hello with a nonce first)")
            )
        }
        let proof = IdentityProof.worker(fingerprint: fingerprint, challenge: started.challenge, nonce: started.nonce, secret: secret)
        guard assignment.totalLayers == checkpoint.config.layers else {
            return .error(ErrorReport(.invalidValue, text: "model has \(checkpoint.config.layers) layers, not \(assignment.totalLayers)"))
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
                return .error(ErrorReport(.internal, text: "cannot load layers: \(error)"))
            }
        } else {
            stage?.releaseAll()
        }
        lock.withLock { coordinator = connection }
        return .hello(Hello(role: .worker, modelFingerprint: proof, name: describe()))
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
