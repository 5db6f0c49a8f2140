import Foundation
import L2PDDecoding
import L2PDEngine
import L2PDFilter
import L2PDModel
import L2PDTokenizer
import L2PDTransport

/// How many requests a coordinator decodes at once and how many may wait for a turn; a request
/// beyond both is refused at once with a "busy" error.
public struct AdmissionLimits: Sendable, Equatable {
    public var concurrent: Int
    public var queued: Int
    /// Forward batches in flight at once (nil: two per worker, which measured best on a 2-worker
    /// loopback cluster; one per worker left bubbles). Forwards beyond that wait and leave
    /// together as one batch.
    public var batchesInFlight: Int?
    public init(concurrent: Int = 8, queued: Int = 32, batchesInFlight: Int? = nil) {
        self.concurrent = max(1, concurrent)
        self.queued = max(0, queued)
        self.batchesInFlight = batchesInFlight.map { max(1, $0) }
    }
}

/// Decoding slots: `admit` takes one or waits in a bounded line for one, `leave` hands it on.
public actor AdmissionGate {
    public nonisolated let limits: AdmissionLimits
    public private(set) var running = 0
    public private(set) var refused = 0
    /// Set when the server is shutting down: new requests are refused, those admitted finish.
    public private(set) var draining = false
    private var line: [CheckedContinuation<Void, Never>] = []

    public init(limits: AdmissionLimits) { self.limits = limits }

    public var waiting: Int { line.count }

    /// Returns holding a slot; throws `CoordinatorBusy` at once when every slot and place in line
    /// is taken, `CoordinatorDraining` once the server is shutting down.
    public func admit() async throws {
        if draining { throw CoordinatorDraining() }
        if running < limits.concurrent {
            running += 1
            return
        }
        guard line.count < limits.queued else {
            refused += 1
            throw CoordinatorBusy(limits: limits)
        }
        await withCheckedContinuation { line.append($0) }  // `leave` hands its slot over
    }

    public func leave() {
        if line.isEmpty {
            running -= 1
        } else {
            line.removeFirst().resume()
        }
    }

    /// Refuses new requests from now on; those running or waiting in line still get served.
    public func startDraining() { draining = true }

    /// No request running or waiting.
    public var idle: Bool { running == 0 && line.isEmpty }
}

/// What a coordinator has served so far.
public struct CoordinatorCounters: Sendable, Equatable, Codable {
    public var served = 0
    public var failed = 0
    public var refusedBusy = 0
    public var running = 0
    public var waiting = 0
    public var forwardPasses = 0
    public var usefulTokens = 0
    /// Forward batches sent to the workers and the sequence steps they carried.
    public var batches = 0
    public var batchedSequences = 0
}

/// The coordinator: owns requests, the unmask policy and EoTP, and drives a `ServingPipeline`
/// with the same decoder as single-process mode: the workers of a cluster (`NetworkPipeline`,
/// holding no weights, only the model's config and tokenizer) or the whole model in this
/// process (`l2pd serve`). Decodes up to `limits.concurrent` requests at once; in a cluster their
/// forward passes occupy different stages at the same time (pipelining).
public actor Coordinator {
    public nonisolated let pipeline: any ServingPipeline
    public let batching: BatchingPipeline
    public nonisolated let limits: AdmissionLimits
    private let generator: TextGenerator
    private let filter: FilterNetwork?
    private let gate: AdmissionGate
    public nonisolated let requestLimits: RequestLimits
    private var nextSequenceID: UInt64 = 1
    private var counters = CoordinatorCounters()

    /// Serves through `pipeline`: a cluster's workers, or the whole model in this process.
    public init(
        pipeline: any ServingPipeline, tokenizer: Tokenizer, filter: FilterNetwork?, limits: AdmissionLimits = AdmissionLimits(),
        requestLimits: RequestLimits = RequestLimits()
    ) {
        self.pipeline = pipeline
        // Forwards of concurrent requests leave together once enough batches are in flight.
        batching = BatchingPipeline(pipeline, maxInFlight: limits.batchesInFlight ?? 2 * max(1, pipeline.workerCount))
        generator = TextGenerator(tokenizer: tokenizer, pipeline: batching)
        self.filter = filter
        self.limits = limits
        self.requestLimits = requestLimits
        gate = AdmissionGate(limits: limits)
    }

    /// A cluster coordinator: the model's config and tokenizer from `modelDirectory` (never its
    /// weights), the workers' layers over nng.
    public init(
        modelDirectory: URL, workers: [WorkerEndpoint], filter: FilterNetwork?, timeout: Double = 60,
        limits: AdmissionLimits = AdmissionLimits(), requestLimits: RequestLimits = RequestLimits()
    ) throws {
        let config = try ModelConfig.load(from: modelDirectory.appendingPathComponent("config.json"))
        let tokenizer = try Tokenizer(contentsOf: modelDirectory.appendingPathComponent("tokenizer.json"))
        let network = try NetworkPipeline(
            config: config, fingerprint: try ModelFingerprint.of(directory: modelDirectory), workers: workers, timeout: timeout)
        self.init(pipeline: network, tokenizer: tokenizer, filter: filter, limits: limits, requestLimits: requestLimits)
    }

    /// Graceful shutdown: refuses new requests (503 with Retry-After) and waits for those admitted
    /// to finish, at most `timeout` seconds. Returns whether every one finished.
    public func drain(timeout: Double) async -> Bool {
        await gate.startDraining()
        let deadline = ContinuousClock.now + .milliseconds(Int(max(0, timeout) * 1000))
        while !(await gate.idle) {
            if ContinuousClock.now >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return true
    }

    public var isDraining: Bool { get async { await gate.draining } }

    /// Greets every worker and assigns its layers; fails naming the first worker that cannot serve.
    public func connect() async throws { try await pipeline.connect() }

    public var statistics: CoordinatorCounters {
        get async {
            var c = counters
            c.running = await gate.running
            c.waiting = await gate.waiting
            c.refusedBusy = await gate.refused
            c.batches = await batching.batches
            c.batchedSequences = await batching.batchedSequences
            return c
        }
    }

    public nonisolated var tokenizer: Tokenizer { generator.tokenizer }

    /// Tokens of the request's prompt as the model sees it (0 when it cannot be encoded).
    public nonisolated func promptTokenCount(_ request: GenerationRequest) -> Int {
        guard (try? requestLimits.check(prompt: request.prompt)) != nil else { return 0 }
        return (try? generator.promptTokens(request.prompt, raw: request.raw ?? false).count) ?? 0
    }

    /// Decodes one request. Every field is validated and the prompt tokenized (off Swift's
    /// cooperative pool, its size bounded first) before the request takes a decoding slot, so a
    /// bad or large request never delays the others. `onStep` sees every decoding step (for
    /// streaming); it must not block.
    public func generate(
        _ request: GenerationRequest, onStep: (@Sendable (StepEvent) -> Void)? = nil
    ) async throws -> GenerationReply {
        do {
            let options = try request.validated(
                limits: requestLimits, maxSequenceLength: pipeline.config.maxSequenceLength, filter: filter)
            let generator = self.generator
            let prompt = try await OffPool.run { try generator.promptTokens(request.prompt, raw: request.raw ?? false) }
            try generator.decoder.validate(promptLength: prompt.count, options: options)
            try await gate.admit()
            let id = nextSequenceID
            nextSequenceID += 1
            do {
                let reply = GenerationReply(
                    try await generator.generate(promptTokens: prompt, options: options, sequenceID: id, onStep: onStep))
                await gate.leave()
                counters.served += 1
                counters.forwardPasses += reply.nfe
                counters.usefulTokens += reply.useful_tokens
                return reply
            } catch {
                await gate.leave()
                throw error
            }
        } catch {
            if !(error is CoordinatorBusy) { counters.failed += 1 }
            throw error
        }
    }

    /// Serves JSON requests on `server` until it closes, answering up to `limits.concurrent +
    /// limits.queued` clients at once plus a few more that hear "busy" straight away. A request
    /// is decoded on the socket's own thread; one that does not decode is answered at once.
    public nonisolated func serve(on server: ReplyServer) throws {
        try server.serve(contexts: limits.concurrent + limits.queued + 4) { bytes in
            let request: GenerationRequest
            switch Self.decode(bytes, limits: self.requestLimits) {
            case .failure(let error): return Self.errorReply(error)
            case .success(let decoded): request = decoded
            }
            let reply = ResultBox()
            let done = DispatchSemaphore(value: 0)
            Task {
                do {
                    reply.value = Array(try JSONEncoder().encode(try await self.generate(request)))
                } catch {
                    reply.value = Self.errorReply(error)
                }
                done.signal()
            }
            done.wait()
            return reply.value
        }
    }

    /// The JSON reply to one JSON request: a `GenerationReply`, or `{"error": "...", "kind": "..."}`
    /// with `kind` an `ErrorClass` raw value.
    public func answer(_ bytes: [UInt8]) async -> [UInt8] {
        switch Self.decode(bytes, limits: requestLimits) {
        case .failure(let error): return Self.errorReply(error)
        case .success(let request):
            do { return Array(try JSONEncoder().encode(try await generate(request))) } catch { return Self.errorReply(error) }
        }
    }

    /// A request as sent over nng: size checked before it is parsed, types strict.
    static func decode(_ bytes: [UInt8], limits: RequestLimits) -> Result<GenerationRequest, RequestError> {
        guard bytes.count <= limits.maxBodyBytes else {
            return .failure(RequestError("the request has \(bytes.count) bytes; this server accepts at most \(limits.maxBodyBytes)"))
        }
        do { return .success(try JSONDecoder().decode(GenerationRequest.self, from: Data(bytes))) } catch {
            return .failure(RequestError(decoding: error))
        }
    }

    static func errorReply(_ error: any Error) -> [UInt8] {
        let text = String(describing: error)
        let body = ["error": text, "kind": ErrorClass.of(error).rawValue]
        return Array((try? JSONEncoder().encode(body)) ?? Data(#"{"error":"unknown","kind":"server_error"}"#.utf8))
    }
}

/// A request refused because the server is shutting down.
public struct CoordinatorDraining: ClassifiedError, Sendable {
    public var errorClass: ErrorClass { .unavailable }
    public var description: String { "the server is shutting down; try again later or at another server" }
}

/// A request refused because the coordinator is decoding and queueing all it may.
public struct CoordinatorBusy: ClassifiedError, Sendable {
    public nonisolated let limits: AdmissionLimits
    public var errorClass: ErrorClass { .busy }
    public var description: String {
        "busy: \(limits.concurrent) requests decoding and \(limits.queued) waiting; try again later"
    }
}

final class ResultBox: @unchecked Sendable {
    var value: [UInt8] = []
}

/// `l2pd generate --coordinator URL`: one request, its reply or the coordinator's error.
public enum CoordinatorClient {
    public static func generate(_ request: GenerationRequest, url: String, timeout: Double = 600) throws -> GenerationReply {
        let socket = try RequestSocket(dialing: url)
        let bytes = try socket.request(Array(try JSONEncoder().encode(request)), timeout: timeout)
        if let reply = try? JSONDecoder().decode(GenerationReply.self, from: Data(bytes)) { return reply }
        if let error = try? JSONDecoder().decode([String: String].self, from: Data(bytes)), let text = error["error"] {
            throw CoordinatorRefusal(kind: error["kind"] ?? ErrorClass.internalError.rawValue, message: "coordinator: \(text)")
        }
        throw ClusterError("coordinator at \(url) sent an unreadable reply")
    }
}

/// An error reply of the coordinator: `kind` is an `ErrorClass` raw value.
public struct CoordinatorRefusal: ClassifiedError, Sendable {
    public let kind: String
    public let message: String
    public init(kind: String, message: String) {
        self.kind = kind
        self.message = message
    }
    public var description: String { message }
    public var errorClass: ErrorClass { ErrorClass(rawValue: kind) ?? .internalError }
}

/// Runs blocking or CPU-heavy work (tokenizing, blocking C calls) on a Dispatch queue, off
/// Swift's cooperative pool, and returns its result.
public enum OffPool {
    static let queue = DispatchQueue(label: "l2pd.off-pool", attributes: .concurrent)

    public static func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try work() }) }
        }
    }
}
