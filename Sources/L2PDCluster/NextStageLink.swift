import Foundation
import L2PDProtocol
import L2PDTransport

/// A worker's link to a stage after it in a chained pass: dialled on first use, greeted with a
/// handshake that proves the model and the cluster secret both ways before any hidden state
/// crosses it, and greeted again whenever it reconnects (the other worker may have restarted).
final class NextStageLink: @unchecked Sendable {
    // @unchecked: `greetedConnection` and `nextRequestID` are guarded by `lock`.
    let url: String
    private let exchanger: FrameExchanger
    private let fingerprint: UInt64
    private let secret: [UInt8]
    private let name: String
    private let greeting = SingleFlight()
    private let lock = NSLock()
    /// The connection the handshake succeeded on (-1: none yet).
    private var greetedConnection = -1
    private var nextRequestID: UInt64 = 1

    init(transport: any FrameTransport, fingerprint: UInt64, secret: [UInt8], name: String) {
        url = transport.url
        exchanger = FrameExchanger(
            transport,
            replyKey: { frame in
                guard frame.count >= 16 else { return nil }
                return frame.withUnsafeBytes { FrameHeader.replyIdentity(for: $0).requestID }
            })
        self.fingerprint = fingerprint
        self.secret = secret
        self.name = name
    }

    private var isGreeted: Bool {
        let transport = exchanger.transport
        return transport.isConnected && lock.withLock { greetedConnection } == transport.connectionCount
    }

    /// Sends one frame on, greeting the stage first when this connection has not been greeted;
    /// throws a one-line `NextStageError` when the stage cannot be reached or refuses.
    func deliver(_ frame: [UInt8], timeout: Double) async throws {
        if !isGreeted {
            try await greeting.run { [self] in
                if !isGreeted { try await greet(timeout: timeout) }
            }
        }
        do { try await exchanger.transport.send(frame, timeout: timeout) } catch {
            throw NextStageError("the next stage at \(url) did not take the hidden states: \(error)")
        }
    }

    /// Sends without waiting when the link is greeted already; false when it is not (then
    /// `deliver` must run). `failed` hears of a send that no peer took.
    func sendIfGreeted(_ frame: [UInt8], timeout: Double, failed: @escaping @Sendable (String) -> Void) -> Bool {
        guard isGreeted else { return false }
        exchanger.transport.send(frame, timeout: timeout) { [url] error in
            if let error { failed("the next stage at \(url) did not take the hidden states: \(error)") }
        }
        return true
    }

    /// `hello` (role stage, this worker's nonce) answered by the stage's nonce and proof;
    /// `hello` with this worker's proof over both nonces, answered by `hello`.
    private func greet(timeout: Double) async throws {
        let connection = exchanger.transport.connectionCount
        let challenge = IdentityProof.nonce()
        let first = try await exchange(.hello(Hello(role: .stage, modelFingerprint: 0, nonce: challenge, name: name)), timeout: timeout)
        guard case .hello(let answer) = first, answer.role == .worker, answer.nonce != 0,
            answer.modelFingerprint
                == IdentityProof.worker(fingerprint: fingerprint, challenge: challenge, nonce: answer.nonce, secret: secret)
        else {
            throw NextStageError(
                "the next stage at \(url) could not prove it holds this model and the cluster secret (\(Self.describe(first)))")
        }
        let proof = IdentityProof.stage(fingerprint: fingerprint, challenge: challenge, nonce: answer.nonce, secret: secret)
        let second = try await exchange(.hello(Hello(role: .stage, modelFingerprint: proof, name: name)), timeout: timeout)
        guard case .hello(let accepted) = second, accepted.modelFingerprint == answer.modelFingerprint else {
            throw NextStageError("the next stage at \(url) refused this worker (\(Self.describe(second)))")
        }
        lock.withLock { greetedConnection = connection }
    }

    private func exchange(_ message: Message, timeout: Double) async throws -> Message {
        let id = lock.withLock { () -> UInt64 in
            defer { nextRequestID += 1 }
            return nextRequestID
        }
        do {
            let reply = try await exchanger.exchange(
                try Frame(requestID: id, message: message).encode(), key: id, sendTimeout: timeout, replyTimeout: timeout)
            return try Frame.decode(reply).message
        } catch let error as TransportError {
            throw NextStageError("the next stage at \(url) is unreachable: \(error.detail)")
        } catch let error as ProtocolError {
            throw NextStageError("the next stage at \(url) sent an undecodable frame: \(error)")
        }
    }

    private static func describe(_ message: Message) -> String {
        if case .error(let report) = message { return "\(report.knownCode?.description ?? "error \(report.code)"): \(report.text)" }
        return "answered with \(message.kind)"
    }

    func close() { exchanger.close() }
}

/// Why a chained pass could not go on to the next stage, in one line. `permanent`: this worker
/// can never send passes on (no CA to verify a TLS stage, or no way to dial), as opposed to a
/// stage that cannot be reached now.
struct NextStageError: Error, CustomStringConvertible {
    let description: String
    let permanent: Bool
    init(_ description: String, permanent: Bool = false) {
        self.description = description
        self.permanent = permanent
    }
}
