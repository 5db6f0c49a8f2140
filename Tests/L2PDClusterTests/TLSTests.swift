import Foundation
import L2PDDecoding
import L2PDDefaultModel
import L2PDEngine
import L2PDModel
import L2PDTasks
import L2PDTransport
import Testing

@testable import L2PDCluster

/// The throwaway certificates in Fixtures/tls (cluster/make-test-certs.sh).
enum TestCertificates {
    static var folder: URL { Bundle.module.resourceURL!.appendingPathComponent("Fixtures/tls") }
    static func path(_ name: String) -> String { folder.appendingPathComponent(name).path }
    static var workerArguments: [String] { ["--tls-cert", path("worker.pem"), "--tls-key", path("worker.key")] }
    static func client(ca: String = "ca.pem", certificate: Bool = false) throws -> TLSConfiguration {
        try TLSConfiguration(
            TLSFiles(
                ca: path(ca), certificate: certificate ? path("coordinator.pem") : nil, key: certificate ? path("coordinator.key") : nil),
            role: .client)
    }
}

/// Real worker processes behind `tls+tcp://` on loopback: one at a time, like the other cluster tests.
@Suite(.serialized) struct TLSTests {
    /// Over TLS, and over mutual TLS, a 2-worker cluster commits exactly the tokens of one process.
    @Test(arguments: [false, true])
    func aClusterOverTLSGivesTheTokensOfOneProcess(mutual: Bool) async throws {
        let directory = try #require(DefaultModel.directory)
        let bundle = try ModelBundle(directory: directory)
        let workers = try WorkerProcesses(
            count: 2, arguments: TestCertificates.workerArguments + (mutual ? ["--tls-ca", TestCertificates.path("ca.pem")] : []),
            scheme: "tls+tcp")
        #expect(workers.urls.allSatisfy { $0.hasPrefix("tls+tcp://") })
        let network = try await connectedPipeline(
            workers, config: bundle.checkpoint.config, tls: try TestCertificates.client(certificate: mutual))
        defer { network.close() }
        let local = TextGenerator(tokenizer: bundle.tokenizer, pipeline: try InProcessPipeline(checkpoint: bundle.checkpoint))
        let cluster = TextGenerator(tokenizer: bundle.tokenizer, pipeline: network)
        for policy in ["baseline", "threshold+eotp"] {
            for cache in [CacheMode.none, .dual] {
                var request = DecodingParameters()
                request.policy = policy
                request.cache = cache.rawValue
                request.genLength = 32
                request.blockLength = 16
                let options = try request.options(maxSequenceLength: 2048, filter: nil)
                for (i, prompt) in TaskSuite.examples(split: .eval, count: 3, seed: 4).map(\.prompt).enumerated() {
                    let a = try await local.generate(prompt, options: options, sequenceID: UInt64(i + 1))
                    let b = try await cluster.generate(prompt, options: options, sequenceID: UInt64(i + 1))
                    #expect(a.tokens == b.tokens, "\(policy) cache=\(cache) prompt \(i)")
                }
            }
        }
        #expect(network.statistics.forwards > 0)
        // With the CA, workers verify each other and pass hidden states on over TLS; without it
        // the first worker says it cannot, and passes are relayed through the coordinator.
        #expect(network.linkMode == (mutual ? .chained : .relay))
    }

    /// The error a coordinator gets when it connects to `url` with `tls` (nil when it connects).
    func connectError(_ url: String, tls: TLSConfiguration?) async throws -> String? {
        let config = try ModelConfig.load(from: try #require(DefaultModel.directory).appendingPathComponent("config.json"))
        let pipeline = try NetworkPipeline(
            config: config, fingerprint: try ModelFingerprint.of(directory: try #require(DefaultModel.directory)),
            workers: [WorkerEndpoint(url: url, layers: 0..<config.layers)], faultTolerance: FaultTolerance(retryWindow: 0),
            tls: tls)
        defer { pipeline.close() }
        // Generous: a loaded machine may take seconds to start the worker.
        for attempt in 0..<600 {
            do {
                try await pipeline.connect()
                return nil
            } catch {
                let text = "\(error)"
                if text.contains("TLS") || text.contains("certificate") || attempt == 599 { return text }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        return nil
    }

    /// Each broken link fails at once with one line that names the problem: a CA that did not
    /// sign the worker's certificate, a plaintext coordinator at a TLS worker, a TLS coordinator
    /// at a plaintext worker, a mutual-TLS worker and a coordinator without a certificate.
    @Test func brokenTLSLinksAreNamedInOneLine() async throws {
        let tlsWorker = try WorkerProcesses(count: 1, arguments: TestCertificates.workerArguments, scheme: "tls+tcp")
        let url = tlsWorker.urls[0]
        let plainURL = url.replacingOccurrences(of: "tls+tcp://", with: "tcp://")
        let wrongCA = try await connectError(url, tls: try TestCertificates.client(ca: "other-ca.pem"))
        #expect(wrongCA?.contains("is not signed by the CA in") == true, "\(wrongCA ?? "connected")")
        let plaintextCoordinator = try await connectError(plainURL, tls: nil)
        #expect(plaintextCoordinator?.contains("answers with TLS: use tls+tcp://") == true, "\(plaintextCoordinator ?? "connected")")
        #expect(try await connectError(url, tls: try TestCertificates.client()) == nil)
        tlsWorker.local.stop()

        let plainWorker = try WorkerProcesses(count: 1)
        let tlsURL = plainWorker.urls[0].replacingOccurrences(of: "tcp://", with: "tls+tcp://")
        let tlsCoordinator = try await connectError(tlsURL, tls: try TestCertificates.client())
        #expect(tlsCoordinator?.contains("does not speak TLS") == true, "\(tlsCoordinator ?? "connected")")
        plainWorker.local.stop()

        let mutualWorker = try WorkerProcesses(
            count: 1, arguments: TestCertificates.workerArguments + ["--tls-ca", TestCertificates.path("ca.pem")], scheme: "tls+tcp")
        let noCertificate = try await connectError(mutualWorker.urls[0], tls: try TestCertificates.client())
        #expect(noCertificate?.contains("requires a client certificate") == true, "\(noCertificate ?? "connected")")
        #expect(try await connectError(mutualWorker.urls[0], tls: try TestCertificates.client(certificate: true)) == nil)
        for text in [wrongCA, plaintextCoordinator, tlsCoordinator, noCertificate] { #expect(text?.contains("\n") == false) }
    }

    /// A worker refuses to start with an expired certificate, a key of another certificate, or
    /// a TLS address without a certificate, each with one line on standard error.
    @Test func aWorkerWithBadTLSMaterialRefusesToStart() throws {
        let cases: [([String], String)] = [
            (
                ["--tls-cert", TestCertificates.path("expired/worker.pem"), "--tls-key", TestCertificates.path("expired/worker.key")],
                "has expired on 2020-01-02"
            ),
            (
                ["--tls-cert", TestCertificates.path("worker.pem"), "--tls-key", TestCertificates.path("coordinator.key")],
                "does not belong"
            ),
            ([], "needs --tls-cert and --tls-key"),
            (["--tls-cert", TestCertificates.path("worker.pem")], "give both a certificate and its key"),
            (["--tls-cert", "/nonexistent.pem", "--tls-key", TestCertificates.path("worker.key")], "cannot read the certificate file"),
        ]
        for (arguments, expected) in cases {
            let process = Process()
            process.executableURL = try WorkerProcesses.executable
            process.arguments = ["worker", "--listen", "tls+tcp://127.0.0.1:1", "--quiet"] + arguments
            let errors = Pipe()
            process.standardError = errors
            try process.run()
            let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationStatus == 1, "\(arguments): \(text)")
            #expect(text.contains(expected), "\(arguments): \(text)")
        }
    }
}
