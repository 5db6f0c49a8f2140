import Foundation
import L2PDDecoding
import L2PDDefaultModel
import L2PDEngine
import L2PDFilter
import L2PDModel
import L2PDProtocol
import L2PDStageIO
import L2PDTransport
import Testing

@testable import L2PDCluster

/// Retries `operation` while the workers start, for at most 20 s, then gives its last error.
func retrying(_ operation: () async throws -> Void) async throws {
    let deadline = ContinuousClock.now + .seconds(20)
    while true {
        do { return try await operation() } catch {
            if ContinuousClock.now > deadline { throw error }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}

/// A coordinator with two real worker processes, its nng door and its HTTP door.
final class LiveService: @unchecked Sendable {
    let workers: WorkerProcesses
    let coordinator: Coordinator
    let nngURL: String
    let replyServer: ReplyServer
    let http: HTTPServer
    var httpPort: Int { Int(http.port) }

    init(requestLimits: RequestLimits = RequestLimits(), httpLimits: HTTPServer.Limits = HTTPServer.Limits()) async throws {
        let directory = try #require(DefaultModel.directory)
        let config = try ModelConfig.load(from: directory.appendingPathComponent("config.json"))
        workers = try WorkerProcesses(count: 2)
        let endpoints = zip(workers.urls, LayerPlan.even(layers: config.layers, stages: 2)).map { WorkerEndpoint(url: $0, layers: $1) }
        let filter = try DefaultModel.filter.map { try FilterNetwork(contentsOf: $0) }
        let coordinator = try Coordinator(
            modelDirectory: directory, workers: endpoints, filter: filter, timeout: 30,
            limits: AdmissionLimits(concurrent: 4, queued: 64), requestLimits: requestLimits)
        try await retrying { try await coordinator.connect() }
        self.coordinator = coordinator
        nngURL = "tcp://127.0.0.1:\(8_000 + Int.random(in: 0..<4_000))"
        replyServer = try ReplyServer(listening: nngURL)
        let server = replyServer
        Task { try? await coordinator.serve(on: server) }
        http = try HTTPServer(url: "http://127.0.0.1:0", limits: httpLimits)
        try HTTPAPI(coordinator: coordinator, modelName: "default").install(on: http)
        try http.start()
    }

    func stop() {
        http.stop()
        replyServer.close()
        coordinator.pipeline.close()
    }

    /// `/health` answers 200 with every worker connected.
    func healthy() throws -> Bool {
        let (status, body) = try RawHTTP.request(port: httpPort, "GET", "/health")
        return status == 200 && body.contains("\"ok\"")
    }
}

/// Boundary values for request fields, as JSON text.
enum BoundaryValues {
    static let megabyteString = "\"" + String(repeating: "a", count: 1 << 20) + "\""
    static let all: [String] = [
        "0", "-1", "1", "1.5", "1e30", "-1e30", "1e39", "-1e39", "1e-50", "9223372036854775807", "9223372036854775808",
        "-9223372036854775808", "18446744073709551616", "\"NaN\"", "\"Infinity\"", "\"-Infinity\"", "true", "false", "null",
        "\"\"", "\"x\"", "[]", "{}", "[1]", megabyteString,
    ]
    /// Every field a completion body reads, and the fields of a valid, cheap request.
    static let fields = [
        "prompt", "raw", "policy", "gen_length", "block_length", "steps", "cache", "eotp", "eotp_gate", "threshold", "factor",
        "delta", "tau", "temperature", "seed", "stream", "max_tokens", "timeout",
    ]
    static let base: [(String, String)] = [
        ("prompt", "\"What is 1 + 2?\""), ("policy", "\"threshold\""), ("gen_length", "32"), ("block_length", "32"),
        ("cache", "\"dual\""),
    ]

    /// The base request with `field` set to `value` (JSON text).
    static func body(_ field: String, _ value: String) -> String {
        var pairs = base.filter { $0.0 != field }
        pairs.append((field, value))
        return "{" + pairs.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}"
    }
}

@Suite(.serialized) struct DoorTests {
    /// The numbered crash inputs of the reliability issue, each answered with a 400.
    @Test func theInputsThatOnceCrashedTheCoordinatorAreRefusedAndServiceGoesOn() async throws {
        let service = try await LiveService()
        defer { service.stop() }
        let port = service.httpPort
        let crashes = [
            #"{"prompt":"What is 3 + 4?","policy":"factor","factor":-1e30}"#,
            #"{"prompt":"What is 3 + 4?","policy":"factor","factor":-1e39}"#,
            #"{"prompt":"What is 3 + 4?","steps":1000000000000}"#,
            #"{"prompt":"What is 3 + 4?","steps":9223372036854774784,"gen_length":32}"#,
            #"{"prompt":"What is 3 + 4?","steps":100000000}"#,
            #"{"prompt":"hi","gen_length":9223372036854775807,"block_length":1}"#,
            #"{"prompt":"hi","eotp":1}"#, #"{"prompt":"hi","block_length":true}"#, #"{"prompt":"hi","eotp_gate":2}"#,
            #"{"prompt":"hi","policy":"frechet","delta":1.5}"#, #"{"prompt":"hi","delta":"NaN"}"#,
        ]
        let (streamStatus, _) = try await offPool {
            try RawHTTP.request(port: port, "POST", "/v1/completions", body: #"{"prompt":"hi","stream":1}"#)
        }
        #expect(streamStatus == 400)
        for body in crashes {
            let (status, text) = try await offPool { try RawHTTP.request(port: port, "POST", "/v1/completions", body: body) }
            #expect(status == 400, "\(body) -> \(text)")
            #expect(text.contains("invalid_request_error"), "\(body) -> \(text)")
            let reply = try await RequestSocket(dialing: service.nngURL).request(Array(body.utf8), timeout: Double(slowRequestSeconds))
            let kind = try JSONDecoder().decode([String: String].self, from: Data(reply))["kind"]
            #expect(kind == ErrorClass.invalidRequest.rawValue, "\(body) over nng")
        }
        // Messages name the field they are about.
        let (_, tau) = try await offPool {
            try RawHTTP.request(port: port, "POST", "/v1/completions", body: #"{"prompt":"hi","policy":"learn2pd","tau":5}"#)
        }
        #expect(tau.contains("tau must be"), "\(tau)")
        #expect(try await offPool { try service.healthy() })
        let ok = try await offPool {
            try RawHTTP.request(port: port, "POST", "/v1/completions", body: #"{"prompt":"What is 3 + 4?","policy":"threshold"}"#)
        }
        #expect(ok.0 == 200, "\(ok.1)")
    }

    /// Every field set to every boundary value, through both doors: each case gets a JSON reply
    /// (an answer or a 400), never a crash, a hang or a 500; `/health` stays ok.
    @Test func everyFieldAtItsBoundariesOverHTTPAndNNG() async throws {
        let service = try await LiveService()
        defer { service.stop() }
        let port = service.httpPort
        var cases = 0
        var refused = 0
        for field in BoundaryValues.fields {
            let socket = try RequestSocket(dialing: service.nngURL)
            var outcomes: [(String, Int, String, String)] = []
            for value in BoundaryValues.all {
                let body = BoundaryValues.body(field, value)
                let (status, text) = try await offPool { try RawHTTP.request(port: port, "POST", "/v1/completions", body: body) }
                let reply = try await socket.request(Array(body.utf8), timeout: Double(slowRequestSeconds))
                outcomes.append((value, status, text, String(decoding: reply, as: UTF8.self)))
            }
            for (value, status, text, nng) in outcomes {
                cases += 2
                let shown = "\(field)=\(value.prefix(24))"
                // 413: the 1 MiB value makes the body larger than the HTTP door takes.
                // 504: a valid but tiny `timeout` runs out before the answer.
                let timedOut = field == "timeout" && status == 504
                #expect([200, 400, 413].contains(status) || timedOut, "\(shown): HTTP \(status) \(text.prefix(200))")
                if field == "stream" && value == "true" {
                    #expect(text.hasSuffix("data: [DONE]\n\n"), "\(shown): \(text.suffix(100))")
                } else {
                    #expect((try? JSONSerialization.jsonObject(with: Data(text.utf8))) != nil, "\(shown): HTTP body is not JSON")
                }
                let object = try #require(try? JSONSerialization.jsonObject(with: Data(nng.utf8)) as? [String: Any], "\(shown)")
                if let kind = object["kind"] as? String, !(field == "timeout" && kind == ErrorClass.timeout.rawValue) {
                    #expect(kind == ErrorClass.invalidRequest.rawValue, "\(shown): nng \(nng.prefix(200))")
                    refused += 1
                }
                if status != 200 { refused += 1 }
                // The doors agree on what is valid (`stream` and `max_tokens` exist only over HTTP, `raw` only over nng).
                if status != 413 && !timedOut && !["stream", "max_tokens", "raw"].contains(field) {
                    #expect(
                        (status == 400) == (object["kind"] != nil), "\(shown): HTTP \(status) \(text.prefix(160)) nng \(nng.prefix(160))")
                }
            }
            #expect(try await offPool { try service.healthy() }, "health after \(field)")
        }
        #expect(cases == 2 * BoundaryValues.fields.count * BoundaryValues.all.count)
        #expect(refused > cases / 2)
        let counters = await service.coordinator.statistics
        #expect(counters.running == 0 && counters.waiting == 0)
    }

    /// Bodies and requests that are not what a route expects: each gets a JSON error with the
    /// right status, and the server keeps serving.
    @Test func malformedBodiesAndRequestsGetJSONErrors() async throws {
        var quick = HTTPServer.Limits()
        quick.requestSeconds = 2  // the truncated body waits this long for its 408
        let service = try await LiveService(requestLimits: RequestLimits(maxPromptBytes: 4096), httpLimits: quick)
        defer { service.stop() }
        let port = service.httpPort
        func post(_ body: [UInt8], path: String = "/v1/completions") -> [UInt8] {
            Array("POST \(path) HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8) + body
        }
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        let cases: [(String, [UInt8], Int)] = [
            ("invalid UTF-8 in a string", post([123, 34, 112, 114, 111, 109, 112, 116, 34, 58, 34, 0xff, 0xfe, 34, 125]), 400),
            ("deep nesting", post(Array("{\"prompt\": \"hi\", \"x\": \(deep)}".utf8)), 400),
            ("not an object", post(Array("[1, 2]".utf8)), 400),
            ("empty body", post([]), 400),
            ("truncated body", Array("POST /v1/completions HTTP/1.1\r\nContent-Length: 10\r\n\r\n{\"pro".utf8), 408),
            ("prompt over the limit", post(Array("{\"prompt\": \"\(String(repeating: "7", count: 5000))\"}".utf8)), 400),
            ("body over the limit", post(Array("{\"prompt\": \"\(String(repeating: "7", count: 50_000))\"}".utf8)), 413),
            (
                "chat without a user",
                post(Array(#"{"messages": [{"role": "system", "content": "x"}]}"#.utf8), path: "/v1/chat/completions"), 400
            ),
            (
                "chat with an unknown role",
                post(Array(#"{"messages": [{"role": "robot", "content": "x"}]}"#.utf8), path: "/v1/chat/completions"), 400
            ),
            ("unknown path", Array("GET /v2/everything HTTP/1.1\r\nConnection: close\r\n\r\n".utf8), 404),
            ("wrong method", Array("PUT /v1/completions HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8), 405),
            ("HTTP/2 request line", Array("GET /health HTTP/2.0\r\n\r\n".utf8), 505),
            ("garbage request line", Array("hello there\r\n\r\n".utf8), 400),
            ("chunked body", Array("POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".utf8), 501),
            ("bad Content-Length", Array("POST /v1/completions HTTP/1.1\r\nContent-Length: -5\r\n\r\n".utf8), 400),
            ("head too large", Array(("GET /health HTTP/1.1\r\nX: " + String(repeating: "y", count: 20_000) + "\r\n\r\n").utf8), 431),
        ]
        for (name, bytes, expected) in cases {
            let (status, text) = try await offPool { try RawHTTP.exchange(port: port, bytes) }
            #expect(status == expected, "\(name): \(status) \(text.prefix(200))")
            let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
            #expect((object?["error"] as? [String: Any])?["message"] is String, "\(name): \(text.prefix(200))")
        }
        // The same kinds of bodies over nng: each gets an invalid-request reply.
        let nngBodies: [(String, [UInt8])] = [
            ("invalid UTF-8", [123, 34, 112, 114, 111, 109, 112, 116, 34, 58, 34, 0xff, 0xfe, 34, 125]),
            ("deep nesting", Array("{\"prompt\": \"hi\", \"x\": \(deep)}".utf8)), ("truncated", Array(#"{"prompt": "hi"#.utf8)),
            ("empty", []), ("not an object", Array("[1, 2]".utf8)), ("null prompt", Array(#"{"prompt": null}"#.utf8)),
        ]
        for (name, bytes) in nngBodies {
            let reply = try await RequestSocket(dialing: service.nngURL).request(bytes, timeout: Double(slowRequestSeconds))
            let kind = try? JSONDecoder().decode([String: String].self, from: Data(reply))["kind"]
            #expect(kind == ErrorClass.invalidRequest.rawValue, "nng \(name): \(String(decoding: reply, as: UTF8.self))")
        }
        #expect(try await offPool { try service.healthy() })
    }

    /// Many clients sending large prompts do not hold up a small request: sizes are checked
    /// before any tokenizing, outside the decoding slots.
    @Test func largePromptsAreRefusedWithoutHoldingUpASmallRequest() async throws {
        let service = try await LiveService()
        defer { service.stop() }
        let port = service.httpPort
        let megabyte = #"{"prompt": ""# + String(repeating: "9", count: 1 << 20) + #""}"#
        let small = #"{"prompt": "What is 3 + 4?", "policy": "threshold", "gen_length": 32, "block_length": 32}"#
        let results = try await withThrowingTaskGroup(of: (Bool, Int).self) { group in
            for _ in 0..<16 {
                group.addTask {
                    (false, try await offPool { try RawHTTP.request(port: port, "POST", "/v1/completions", body: megabyte).0 })
                }
            }
            group.addTask { (true, try await offPool { try RawHTTP.request(port: port, "POST", "/v1/completions", body: small).0 }) }
            var out: [(Bool, Int)] = []
            for try await result in group { out.append(result) }
            return out
        }
        #expect(results.filter { !$0.0 }.allSatisfy { $0.1 == 413 })
        #expect(results.first { $0.0 }?.1 == 200)
        // Over nng, a prompt beyond the limit is refused with a message, not tokenized.
        let reply = try await RequestSocket(dialing: service.nngURL).request(Array(megabyte.utf8), timeout: Double(slowRequestSeconds))
        #expect(String(decoding: reply, as: UTF8.self).contains("accepts at most"))
    }
}

/// A worker that speaks the protocol but answers forwards with whatever `readout` makes. It
/// holds the model (answers the handshake with real proofs) unless `echoes`: then it behaves
/// like a process squatting a worker's port, echoing whatever identity it is sent.
final class FakeWorker: Sendable {
    let url: String
    private let transport: any FrameTransport
    private let serving: Task<Void, Never>

    /// Listens on a random loopback port.
    convenience init(fingerprint: UInt64, echoes: Bool = false, readout: @escaping @Sendable (SequenceForward) -> Readout) throws {
        let url = "tcp://127.0.0.1:\(12_000 + Int.random(in: 0..<6_000))"
        let socket = try PairSocket.listen(url, maxMessageBytes: ProtocolLimits.maxFrameBytes)
        self.init(transport: socket, fingerprint: fingerprint, echoes: echoes, readout: readout)
    }

    /// Serves on `transport` (an in-memory link, say).
    init(
        transport: any FrameTransport, fingerprint: UInt64, echoes: Bool = false,
        readout: @escaping @Sendable (SequenceForward) -> Readout
    ) {
        url = transport.url
        self.transport = transport
        serving = Task {
            var challenge: UInt64 = 0
            while true {
                guard let bytes = try? await transport.receive() else { return }
                guard let frame = try? Frame.decode(bytes) else { continue }
                let message: Message
                switch frame.message {
                case .hello(let hello):
                    challenge = hello.nonce
                    let answer = echoes ? challenge : IdentityProof.worker(fingerprint: fingerprint, challenge: challenge, nonce: 42)
                    message = .hello(Hello(role: .worker, modelFingerprint: answer, nonce: 42, name: "fake"))
                case .shardAssignment(let assignment):
                    let answer =
                        echoes
                        ? assignment.modelFingerprint : IdentityProof.worker(fingerprint: fingerprint, challenge: challenge, nonce: 42)
                    message = .hello(Hello(role: .worker, modelFingerprint: answer, nonce: 42, name: "fake"))
                case .ping(let nonce): message = .pong(nonce: nonce)
                case .forward(let request):
                    message = .readout(
                        ReadoutReply(sequences: request.batch.map { SequenceReadout(sequenceID: $0.sequenceID, readout: readout($0)) }))
                case .releaseCache(let ids): message = .releaseCache(ids)
                default: continue
                }
                if let reply = try? Frame(requestID: frame.requestID, step: frame.step, message: message).encode() {
                    try? await transport.send(reply, timeout: 2)
                }
            }
        }
    }

    func close() {
        transport.close()
        serving.cancel()
    }
}

@Suite(.serialized) struct WorkerReplyTests {
    /// A process that echoes the identity it is sent (as one squatting a dead worker's port
    /// would) is refused by name: the coordinator never sends the fingerprint it must prove.
    @Test func aPortSquatterThatEchoesIsRefusedByName() async throws {
        let directory = try #require(DefaultModel.directory)
        let config = try ModelConfig.load(from: directory.appendingPathComponent("config.json"))
        let fingerprint = try ModelFingerprint.of(directory: directory)
        let squatter = try FakeWorker(fingerprint: 0, echoes: true) { s in
            Readout(positions: s.readPositions, tokens: s.readPositions.map { _ in 5 }, confidences: s.readPositions.map { _ in 0.5 })
        }
        defer { squatter.close() }
        let pipeline = try NetworkPipeline(
            config: config, fingerprint: fingerprint, workers: [WorkerEndpoint(url: squatter.url, layers: 0..<config.layers)],
            timeout: 10)
        defer { pipeline.close() }
        var message = ""
        for _ in 0..<50 {
            do {
                try await pipeline.connect()
                message = "accepted"
                break
            } catch {
                message = String(describing: error)
                if !message.contains("unreachable") { break }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        #expect(message.contains("could not prove it holds model"), "\(message)")
        #expect(message.contains(squatter.url))
    }

    /// Malformed readouts from a worker fail only their request, with an error naming the
    /// worker; nothing of them reaches an answer.
    @Test func malformedReadoutsFailTheRequestNamingTheWorker() async throws {
        let directory = try #require(DefaultModel.directory)
        let config = try ModelConfig.load(from: directory.appendingPathComponent("config.json"))
        let fingerprint = try ModelFingerprint.of(directory: directory)
        let n: @Sendable (SequenceForward) -> Int = { $0.readPositions.count }
        let bad: [(String, @Sendable (SequenceForward) -> Readout)] = [
            ("zero positions", { _ in Readout(positions: [], tokens: [], confidences: []) }),
            (
                "token outside the vocabulary",
                { s in
                    Readout(
                        positions: s.readPositions, tokens: Array(repeating: 1_000_000, count: n(s)),
                        confidences: Array(repeating: 0.5, count: n(s)))
                }
            ),
            (
                "negative token",
                { s in
                    Readout(
                        positions: s.readPositions, tokens: Array(repeating: -3, count: n(s)),
                        confidences: Array(repeating: 0.5, count: n(s)))
                }
            ),
            (
                "NaN confidence",
                { s in
                    Readout(
                        positions: s.readPositions, tokens: Array(repeating: 5, count: n(s)),
                        confidences: Array(repeating: .nan, count: n(s)))
                }
            ),
            ("too few tokens", { s in Readout(positions: s.readPositions, tokens: [5], confidences: [0.5]) }),
            (
                "other positions",
                { s in
                    Readout(
                        positions: s.readPositions.map { $0 + 1 }, tokens: Array(repeating: 5, count: n(s)),
                        confidences: Array(repeating: 0.5, count: n(s)))
                }
            ),
        ]
        var sent = 0
        for (name, make) in bad {
            let probe = SequenceForward(sequenceID: 1, length: 36, computed: 0..<36, readPositions: Array(4..<36))
            #expect(make(probe).problem(answering: probe, vocabulary: config.embeddingSize) != nil, "\(name) passes the check")
            let frame = Frame(
                requestID: 1, message: .readout(ReadoutReply(sequences: [SequenceReadout(sequenceID: 1, readout: make(probe))])))
            guard (try? frame.encode()) != nil else { continue }  // the codec itself cannot carry it
            sent += 1
            let fake = try FakeWorker(fingerprint: fingerprint, readout: make)
            defer { fake.close() }
            let pipeline = try NetworkPipeline(
                config: config, fingerprint: fingerprint, workers: [WorkerEndpoint(url: fake.url, layers: 0..<config.layers)], timeout: 10)
            defer { pipeline.close() }
            try await retrying { try await pipeline.connect() }
            let decoder = Decoder(pipeline: pipeline)
            var options = GenerationOptions()
            options.genLength = 32
            do {
                _ = try await decoder.generate(prompt: [0, 3, 4, 5], options: options)
                Issue.record("\(name): accepted")
            } catch let error as ClusterError {
                #expect(error.description.contains(fake.url), "\(name): \(error)")
                #expect(error.errorClass == .internalError, "\(name)")
            }
        }
        #expect(sent >= 3, "zero positions, out-of-vocabulary tokens and other positions cross the wire")
    }
}
