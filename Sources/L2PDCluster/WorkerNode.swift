import Foundation
import L2PDModel
import L2PDProtocol
import L2PDTransport

/// A worker process's role: listens for one coordinator, takes the layer range it is
/// assigned, loads only those weights, keeps per-request K/V caches for its layers, and
/// answers every frame (hidden states, or the compact readout on the last stage). Frames are
/// handled one at a time, off Swift's cooperative pool; a malformed frame gets an `error` frame
/// back and never stops the loop.
public final class WorkerNode: @unchecked Sendable {
    // @unchecked: mutable state is touched only by `handle`, which `serve` runs one frame at a
    // time (the next receive starts when a frame was handled).
    public let transport: any FrameTransport
    public let name: String
    private let checkpoint: Checkpoint
    private let fingerprint: UInt64
    private let threads: Int
    private var stage: Stage?
    private var assigned: Range<Int>?
    /// The challenge of the coordinator's last `hello`, which its `shard_assignment` must prove.
    private var challenge: UInt64 = 0
    private let log: @Sendable (String) -> Void
    private let cacheLimits: CacheLimits

    /// Listens on `url` over nng.
    public convenience init(
        listen url: String, modelDirectory: URL, threads: Int, cacheLimits: CacheLimits = CacheLimits(),
        log: @escaping @Sendable (String) -> Void
    ) throws {
        try self.init(
            transport: try PairSocket.listen(url, maxMessageBytes: ProtocolLimits.maxFrameBytes), modelDirectory: modelDirectory,
            threads: threads, cacheLimits: cacheLimits, log: log)
    }

    /// Serves over `transport` (an nng socket, or an in-memory link in tests).
    public init(
        transport: any FrameTransport, modelDirectory: URL, threads: Int, cacheLimits: CacheLimits = CacheLimits(),
        log: @escaping @Sendable (String) -> Void
    ) throws {
        self.cacheLimits = cacheLimits
        checkpoint = try Checkpoint(directory: modelDirectory)
        fingerprint = try ModelFingerprint.of(directory: modelDirectory)
        self.transport = transport
        name = transport.url
        self.threads = threads
        self.log = log
    }

    /// Serves frames until the transport is closed (cancelling the calling task closes it).
    /// Each frame is handled on the transport's thread as soon as it arrives, one at a time;
    /// the next receive starts when it was handled.
    public func serve() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (finished: CheckedContinuation<Void, Never>) in
                receiveNext(finished: finished)
            }
        } onCancel: {
            transport.close()
        }
    }

    private func receiveNext(finished: CheckedContinuation<Void, Never>) {
        transport.receive { [self] result in
            switch result {
            case .success(let bytes):
                // On the transport's own thread (never Swift's cooperative pool): the frame is
                // handled where it arrived, without another hop.
                if let reply = handle(bytes) {
                    transport.send(reply, timeout: 5) { [log] error in
                        if let error { log("reply dropped: \(error)") }
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

    /// Stops `serve`.
    public func close() { transport.close() }

    /// The reply to one frame, or nil when none is due (a malformed `error` frame).
    public func handle(_ bytes: [UInt8]) -> [UInt8]? {
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
            // The fingerprint never leaves the worker: a coordinator's hello carries a challenge,
            // answered with a proof that this worker holds the model.
            guard hello.role == .coordinator, hello.modelFingerprint != 0 else {
                return reply(.hello(Hello(role: .worker, modelFingerprint: 0, name: describe())))
            }
            challenge = hello.modelFingerprint
            let proof = IdentityProof.worker(fingerprint: fingerprint, challenge: challenge)
            return reply(.hello(Hello(role: .worker, modelFingerprint: proof, name: describe())))
        case .shardAssignment(let assignment):
            guard challenge != 0, assignment.modelFingerprint == IdentityProof.coordinator(fingerprint: fingerprint, challenge: challenge)
            else {
                return reply(
                    .error(
                        ErrorReport(
                            .fingerprintMismatch,
                            text: "worker \(name): the assignment does not prove the same model (send hello with a challenge first)")))
            }
            guard assignment.totalLayers == checkpoint.config.layers else {
                return reply(
                    .error(ErrorReport(.invalidValue, text: "model has \(checkpoint.config.layers) layers, not \(assignment.totalLayers)")))
            }
            if assigned != assignment.layers {
                do {
                    let loaded = Stage(weights: try StageWeights(checkpoint: checkpoint, layers: assignment.layers), threads: threads)
                    loaded.cacheLimits = cacheLimits
                    stage = loaded
                    assigned = assignment.layers
                    log("assigned layers \(assignment.layers.lowerBound)..<\(assignment.layers.upperBound)")
                } catch {
                    stage = nil
                    assigned = nil
                    return reply(.error(ErrorReport(.internal, text: "cannot load layers: \(error)")))
                }
            } else {
                stage?.releaseAll()
            }
            let proof = IdentityProof.worker(fingerprint: fingerprint, challenge: challenge)
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
            return reply(.pong(nonce: nonce))
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
