import Foundation
import L2PDDefaultModel
import L2PDModel
import L2PDProtocol
import L2PDStageIO
import L2PDTransport
import Testing

@testable import L2PDCluster

/// A worker takes chained passes only from a stage that proved the model and the cluster
/// secret on its connection, over an in-memory link playing that stage at the worker's stage
/// address.
@Suite struct StageHandshakeTests {
    @Test func aStageMustProveTheModelAndSecretBeforeItsPassesAreTaken() async throws {
        let directory = try #require(DefaultModel.directory)
        let fingerprint = try ModelFingerprint.of(directory: directory)
        let secret = Array("stage secret".utf8)
        let (stage, far) = InMemoryFrameTransport.pair(url: "memory://next-stage")
        let (_, coordinatorEnd) = InMemoryFrameTransport.pair(url: "memory://next-stage-coordinator")
        let node = try WorkerNode(
            transport: coordinatorEnd, stageTransport: far, modelDirectory: directory, threads: 1, clusterSecret: "stage secret"
        ) { _ in }
        let serving = Task { await node.serve() }
        defer {
            serving.cancel()
            stage.close()
        }
        var id: UInt64 = 0
        func ask(_ message: Message) async throws -> Message? {
            id += 1
            try await stage.send(try Frame(requestID: id, message: message).encode(), timeout: 5)
            guard let reply = try await receive(stage, within: id == 99 ? 1 : 30) else { return nil }
            return try Frame.decode(reply).message
        }
        func errorCode(_ message: Message?) -> ProtocolErrorCode? {
            if case .error(let report) = message { return report.knownCode }
            return nil
        }
        let pass = Message.chainedForward(
            ChainedForward(
                route: [],
                forward: ForwardRequest(
                    batch: [
                        SequenceForward(
                            sequenceID: 1, length: 1, computed: 0..<1, cache: CacheDirective.none, readPositions: [0],
                            sampling: Sampling(temperature: 0, seed: 0, step: 0), wantsEOSProbability: false, topK: 0)
                    ], input: .tokens([1]))))
        #expect(errorCode(try await ask(pass)) == .notAuthenticated)
        // Coordinators have an address of their own.
        #expect(errorCode(try await ask(.hello(Hello(role: .coordinator, modelFingerprint: 0, nonce: 7)))) == .invalidValue)

        // A stage that knows the model but not the secret: its proof is refused.
        let challenge: UInt64 = 0x1234_5678
        guard case .hello(let answer)? = try await ask(.hello(Hello(role: .stage, modelFingerprint: 0, nonce: challenge))) else {
            Issue.record("no hello answered the stage's hello")
            return
        }
        let workerProof = IdentityProof.worker(fingerprint: fingerprint, challenge: challenge, nonce: answer.nonce, secret: secret)
        #expect(answer.nonce != 0 && answer.modelFingerprint == workerProof)
        let withoutSecret = IdentityProof.stage(fingerprint: fingerprint, challenge: challenge, nonce: answer.nonce)
        #expect(errorCode(try await ask(.hello(Hello(role: .stage, modelFingerprint: withoutSecret)))) == .fingerprintMismatch)
        #expect(errorCode(try await ask(pass)) == .notAuthenticated)

        // The nonces were spent: the right proof needs a new handshake, which then succeeds.
        guard case .hello(let again)? = try await ask(.hello(Hello(role: .stage, modelFingerprint: 0, nonce: challenge + 1))) else {
            Issue.record("no hello answered the second handshake")
            return
        }
        let proof = IdentityProof.stage(fingerprint: fingerprint, challenge: challenge + 1, nonce: again.nonce, secret: secret)
        guard case .hello(let accepted)? = try await ask(.hello(Hello(role: .stage, modelFingerprint: proof))) else {
            Issue.record("the proven stage was not accepted")
            return
        }
        #expect(accepted.modelFingerprint == again.modelFingerprint)
        // A proven stage may send passes on, and nothing else a coordinator may send.
        #expect(errorCode(try await ask(.releaseCache([1]))) == .notAuthenticated)
        #expect(errorCode(try await ask(.ping(nonce: 5))) == .notAuthenticated)
        id = 98
        // Its pass is taken: the answer (here: no layers assigned) goes to the coordinator, of
        // which there is none, so nothing comes back on the stage's link.
        #expect(try await ask(pass) == nil)
    }
}

@Suite struct StageAddressTests {
    /// The stage address a worker listens at unless told otherwise, as coordinator and worker
    /// both derive it.
    @Test func stageAddressesAreDerivedFromTheWorkerAddress() {
        #expect(StageAddress.derived(from: "tcp://127.0.0.1:7701") == "tcp://127.0.0.1:7801")
        #expect(StageAddress.derived(from: "tls+tcp://worker-2.example:7701") == "tls+tcp://worker-2.example:7801")
        #expect(StageAddress.derived(from: "tcp://[::1]:65500") == "tcp://[::1]:65400")
        #expect(StageAddress.derived(from: "ipc:///tmp/w1") == "ipc:///tmp/w1.stages")
        #expect(StageAddress.derived(from: "tcp://host") == nil)
        #expect(StageAddress.derived(from: "tcp://host:0") == nil)
        #expect(StageAddress.derived(from: "memory://x") == nil)
        #expect(WorkerEndpoint(url: "tcp://a:1", layers: 0..<1, stageURL: "tcp://b:2").stageURL == "tcp://b:2")
    }
}
