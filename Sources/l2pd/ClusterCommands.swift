import Foundation
import L2PDCluster
import L2PDCommandLine
import L2PDDecoding
import L2PDEngine
import L2PDModel
import L2PDTasks
import L2PDTransport

/// Runs a blocking call on a dedicated thread, away from Swift's cooperative pool.
enum Blocking {
    static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
        }
    }
}

/// Exits cleanly on SIGINT and SIGTERM, with a last line on standard error. With `drain`, the
/// first signal runs it (a graceful shutdown) and then exits 0; a second signal exits at once.
enum StopSignals {
    nonisolated(unsafe) static var sources: [DispatchSourceSignal] = []
    private static let stopping = NSLock()
    nonisolated(unsafe) private static var signalled = false

    static func install(_ label: String, quiet: Bool = false, drain: (@Sendable () async -> Void)? = nil) {
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                let first = stopping.withLock { () -> Bool in
                    defer { signalled = true }
                    return !signalled
                }
                guard first, let drain else {
                    if !quiet { printError("\(label): stopping (signal \(sig))") }
                    exit(0)
                }
                if !quiet { printError("\(label): signal \(sig): draining (a second signal stops at once)") }
                Task {
                    await drain()
                    exit(0)
                }
            }
            source.resume()
            sources.append(source)
        }
    }
}

struct WorkerCommand: Command {
    static let path = ["worker"]
    static let summary = "Serve a range of a model's layers to a coordinator (the range is assigned on connect)."
    static let options: [OptionSpec] = [
        .option("listen", "URL", "Address to listen on (tcp://HOST:PORT, ipc://PATH).", default: "tcp://127.0.0.1:7701"),
        .option("model", "DIR", "Checkpoint directory (Hugging Face LLaDA layout).", default: ModelLocator.defaultDescription),
        .option("threads", "N", "Compute threads of this worker.", default: "1"),
        .flag("quiet", "Log nothing but errors."),
        .option("max-cached-sequences", "N", "K/V caches kept at most; the least recently used beyond is dropped.", default: "64"),
        .option("max-cache-mib", "N", "K/V cache memory at most, in MiB.", default: "4096"),
    ]

    static func run(_ o: ParsedOptions) async throws {
        let url = o.string("listen")!
        let quiet = o.has("quiet")
        let cacheLimits = CacheLimits(
            maxSequences: try o.positiveInt("max-cached-sequences")!, maxBytes: try o.positiveInt("max-cache-mib")! << 20)
        let node = try WorkerNode(
            listen: url, modelDirectory: try ModelLocator.directory(o.string("model")), threads: try o.positiveInt("threads")!,
            cacheLimits: cacheLimits
        ) { line in if !quiet { printError("worker \(url): \(line)") } }
        StopSignals.install("worker \(url)", quiet: quiet)
        if !quiet { printError("worker \(url): listening") }
        try await Blocking.run { node.serve() }
    }
}

/// The flags of a serving process (`l2pd coordinator`, `l2pd serve`), declared once.
enum ServingOptions {
    static let specs: [OptionSpec] = [
        .option("filter", "FILE", "Learn2PD filter for --policy learn2pd.", default: ModelLocator.defaultFilterDescription),
        .option("max-concurrent", "N", "Requests decoded at once (their forward passes are batched).", default: "8"),
        .option("queue", "N", "Requests that may wait for a turn; beyond that new requests are refused as busy.", default: "32"),
        .option(
            "batches-in-flight", "N", "Forward batches in flight at once; more waiting forwards leave together as one batch.",
            shown: "2 per worker; 2 in one process"),
        .option(
            "http", "URL", "OpenAI-compatible HTTP API (/v1/completions, /v1/chat/completions, /metrics); none: off.",
            default: "http://127.0.0.1:7780"),
        .option("max-prompt-bytes", "N", "Largest prompt in UTF-8 bytes, refused before tokenizing.", default: "65536"),
        .option(
            "max-connections", "N", "Open HTTP connections at most; at the cap the oldest idle one makes room, else a newcomer gets 503.",
            default: "256"),
        .option("idle-timeout", "SECONDS", "HTTP keep-alive connections idle this long are closed.", default: "30"),
        .option("header-timeout", "SECONDS", "An HTTP request must arrive whole within this time of its first byte.", default: "10"),
        .option(
            "drain-seconds", "SECONDS", "On SIGINT or SIGTERM, how long requests in flight may take to finish (new ones get 503).",
            default: "30"),
    ]

    static func admission(_ o: ParsedOptions) throws -> AdmissionLimits {
        AdmissionLimits(
            concurrent: try o.positiveInt("max-concurrent")!, queued: try o.nonNegativeInt("queue")!,
            batchesInFlight: try o.positiveInt("batches-in-flight"))
    }

    static func requests(_ o: ParsedOptions) throws -> RequestLimits {
        RequestLimits(maxPromptBytes: try o.positiveInt("max-prompt-bytes")!)
    }

    static func http(_ o: ParsedOptions) throws -> HTTPServer.Limits {
        var limits = HTTPServer.Limits()
        limits.maxConnections = try o.positiveInt("max-connections")!
        limits.idleSeconds = try o.double("idle-timeout")!
        limits.requestSeconds = try o.double("header-timeout")!
        guard limits.idleSeconds > 0, limits.requestSeconds > 0 else { throw UsageError("timeouts must be positive") }
        return limits
    }

    /// Opens the HTTP API (unless `none`) and the nng request/reply socket (unless nil), then
    /// serves until a stop signal. The first SIGINT or SIGTERM drains: new requests get 503 with
    /// Retry-After, those admitted finish (at most `--drain-seconds`), then the process exits 0.
    static func serve(_ coordinator: Coordinator, _ o: ParsedOptions, listen: String?, modelName: String, role: String) async throws {
        let drainSeconds = try o.double("drain-seconds")!
        guard drainSeconds >= 0 else { throw UsageError("--drain-seconds must be at least 0") }
        var httpServer: HTTPServer? = nil
        if let address = o.string("http"), address != "none" {
            let server = try HTTPServer(url: address, limits: try Self.http(o))
            try HTTPAPI(coordinator: coordinator, modelName: modelName).install(on: server)
            try server.start()
            printError("\(role): HTTP API on \(address)")
            httpServer = server
        }
        let http = httpServer
        defer { http?.stop() }
        let replies = try listen.map {
            try ReplyServer(listening: $0, maxMessageBytes: max(4 << 20, coordinator.requestLimits.maxBodyBytes))
        }
        StopSignals.install(role) {
            let finished = await coordinator.drain(timeout: drainSeconds)
            try? await Task.sleep(for: .milliseconds(200))  // the last replies reach their sockets
            http?.stop()
            replies?.close()
            printError(
                finished ? "\(role): every request finished; stopping" : "\(role): drain timed out after \(drainSeconds) s; stopping")
        }
        let limits = coordinator.limits
        guard let replies, let listen else {
            printError("\(role): ready (\(limits.concurrent) at once, \(limits.queued) queued)")
            while true { try await Task.sleep(for: .seconds(3600)) }
        }
        printError("\(role): listening on \(listen) (\(limits.concurrent) at once, \(limits.queued) queued)")
        try await Blocking.run { try coordinator.serve(on: replies) }
        while true { try await Task.sleep(for: .seconds(3600)) }  // a drain in progress exits the process
    }
}

struct CoordinatorCommand: Command {
    static let path = ["coordinator"]
    static let summary = "Connect to the workers of a cluster file and serve generation requests."
    static let options: [OptionSpec] =
        [
            .option(
                "cluster", "FILE", "Cluster description (JSON: model, listen, workers with urls and layers).",
                default: "cluster/local-2.json"),
            .option("connect-timeout", "SECONDS", "How long to wait for every worker at start-up.", default: "30"),
            .option("timeout", "SECONDS", "How long one stage may take for one frame.", default: "60"),
        ] + ServingOptions.specs

    static func run(_ o: ParsedOptions) async throws {
        let description = try ClusterDescription.load(URL(fileURLWithPath: o.string("cluster")!))
        let directory = try ModelLocator.directory(description.model == "default" ? nil : description.model)
        let config = try ModelConfig.load(from: directory.appendingPathComponent("config.json"))
        let workers = try description.endpoints(layers: config.layers)
        let coordinator = try Coordinator(
            modelDirectory: directory, workers: workers, filter: try ModelLocator.filter(o.string("filter")),
            timeout: try o.double("timeout")!, limits: try ServingOptions.admission(o), requestLimits: try ServingOptions.requests(o))
        let deadline = Date().addingTimeInterval(try o.double("connect-timeout")!)
        while true {
            do {
                try await coordinator.connect()
                break
            } catch {
                if Date() > deadline { throw error }
                try await Task.sleep(for: .milliseconds(300))
            }
        }
        for w in workers { printError("coordinator: worker \(w.url) serves layers \(w.layers.lowerBound)..<\(w.layers.upperBound)") }
        try await ServingOptions.serve(
            coordinator, o, listen: description.listen, modelName: directory.lastPathComponent, role: "coordinator")
    }
}

/// `l2pd serve`: the coordinator's admission, batching and HTTP API over the whole model in
/// this process: one command, no workers.
struct ServeCommand: Command {
    static let path = ["serve"]
    static let summary = "Serve the model from this process: OpenAI-compatible HTTP API (and nng requests), no workers."
    static let options: [OptionSpec] =
        [
            .option("model", "DIR", "Checkpoint directory (Hugging Face LLaDA layout).", default: ModelLocator.defaultDescription),
            .option("threads", "N", "Compute threads.", default: "\(ProcessInfo.processInfo.activeProcessorCount)"),
            .option("listen", "URL", "Also answer JSON requests over nng here (as a coordinator does); none: off.", default: "none"),
        ] + ServingOptions.specs

    static func run(_ o: ParsedOptions) async throws {
        let directory = try ModelLocator.directory(o.string("model"))
        let bundle = try ModelBundle(directory: directory)
        let pipeline = try InProcessPipeline(checkpoint: bundle.checkpoint, threads: try o.positiveInt("threads")!)
        let coordinator = Coordinator(
            pipeline: pipeline, tokenizer: bundle.tokenizer, filter: try ModelLocator.filter(o.string("filter")),
            limits: try ServingOptions.admission(o), requestLimits: try ServingOptions.requests(o))
        let listen = o.string("listen").flatMap { $0 == "none" ? nil : $0 }
        let name = o.string("model") == ModelLocator.defaultDescription ? "default" : directory.lastPathComponent
        try await ServingOptions.serve(coordinator, o, listen: listen, modelName: name, role: "serve")
    }
}

/// Starts local worker processes of this same executable, and stops them.
final class LocalWorkers: @unchecked Sendable {
    let urls: [String]
    private var processes: [Process] = []

    init(count: Int, model: String?, threads: Int) throws {
        let base = 20_000 + Int(getpid()) % 20_000
        urls = (0..<count).map { "tcp://127.0.0.1:\(base + $0)" }
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        for url in urls {
            let p = Process()
            p.executableURL = executable
            p.arguments = ["worker", "--listen", url, "--threads", "\(threads)", "--quiet"] + (model.map { ["--model", $0] } ?? [])
            try p.run()
            processes.append(p)
        }
    }

    func stop() {
        for p in processes where p.isRunning { p.terminate() }
        for p in processes { p.waitUntilExit() }
    }

    deinit { stop() }
}

struct BenchClusterCommand: Command {
    static let path = ["bench", "cluster"]
    static let summary = "Run the same prompts in-process and through N local workers; compare tokens, latency, bytes."
    static let options: [OptionSpec] = [
        .option("workers", "N", "Local worker processes (loopback).", default: "2"),
        .option("policy", "NAME", "Unmask policy (suffix +eotp allowed).", default: "threshold"),
        .option("cache", "MODE", "K/V cache: none, prefix or dual.", default: "dual"),
        .option("limit", "N", "Prompts from the evaluation split.", default: "10"),
        .option("gen-length", "N", "Answer canvas length.", default: "256"),
        .option("worker-threads", "N", "Compute threads per worker.", default: "1"),
        .option("model", "DIR", "Checkpoint directory.", default: ModelLocator.defaultDescription),
        .flag("json", "End with one JSON line: workers, prompts, identical, latency_ratio, bytes_per_forward."),
    ]

    static func run(_ o: ParsedOptions) async throws {
        let n = try o.positiveInt("workers")!
        let workerThreads = try o.positiveInt("worker-threads")!
        let modelArgument = o.string("model") == ModelLocator.defaultDescription ? nil : o.string("model")
        let directory = try ModelLocator.directory(modelArgument)
        let bundle = try ModelBundle(directory: directory)
        guard n <= bundle.checkpoint.config.layers else {
            throw UsageError("--workers \(n) exceeds the model's \(bundle.checkpoint.config.layers) layers")
        }
        var parameters = DecodingParameters()
        parameters.policy = o.string("policy")!
        parameters.cache = o.string("cache")!
        parameters.genLength = try o.positiveInt("gen-length")!
        let options = try parameters.options(
            maxSequenceLength: bundle.checkpoint.config.maxSequenceLength, filter: try ModelLocator.filter(nil))
        let examples = TaskSuite.examples(split: .eval, count: try o.positiveInt("limit")!, seed: 1)

        let workers = try LocalWorkers(count: n, model: modelArgument, threads: workerThreads)
        defer { workers.stop() }
        let endpoints = zip(workers.urls, LayerPlan.even(layers: bundle.checkpoint.config.layers, stages: n)).map {
            WorkerEndpoint(url: $0, layers: $1)
        }
        let network = try NetworkPipeline(
            config: bundle.checkpoint.config, fingerprint: try ModelFingerprint.of(directory: directory), workers: endpoints)
        let deadline = Date().addingTimeInterval(30)
        while true {
            do {
                try await network.connect()
                break
            } catch {
                if Date() > deadline { throw error }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        let local = TextGenerator(
            tokenizer: bundle.tokenizer, pipeline: try InProcessPipeline(checkpoint: bundle.checkpoint, threads: workerThreads))
        let cluster = TextGenerator(tokenizer: bundle.tokenizer, pipeline: network)
        var identical = 0
        var localSeconds = 0.0
        var clusterSeconds = 0.0
        let progress = Progress("bench cluster", total: examples.count)
        for (i, example) in examples.enumerated() {
            let a = try await local.generate(example.prompt, options: options, sequenceID: UInt64(i + 1))
            let b = try await cluster.generate(example.prompt, options: options, sequenceID: UInt64(i + 1))
            if a.tokens == b.tokens { identical += 1 }
            localSeconds += a.statistics.seconds
            clusterSeconds += b.statistics.seconds
            progress.update(i + 1, extra: "identical \(identical)/\(i + 1)")
        }
        let wire = network.statistics
        let count = Double(max(examples.count, 1))
        let ratio = localSeconds > 0 ? clusterSeconds / localSeconds : 0
        print(
            "workers \(n) (\(workerThreads) thread(s) each), policy \(parameters.policy!), cache \(parameters.cache!), gen length \(parameters.genLength!)"
        )
        print("             in-process       cluster")
        print(
            String(format: "latency   %10.1f ms %10.1f ms   (mean per request)", 1000 * localSeconds / count, 1000 * clusterSeconds / count)
        )
        print(String(format: "latency ratio (cluster / in-process): %.3f", ratio))
        print("identical tokens: \(identical)/\(examples.count) prompts")
        print(
            String(
                format: "wire: %d forwards, %.0f bytes per forward, %.1f ms round trips per request (compute inside the workers included)",
                wire.forwards, wire.bytesPerForward, 1000 * wire.roundTripSeconds / count))
        if o.has("json") {
            let object: [String: Any] = [
                "workers": n, "prompts": examples.count, "identical": identical == examples.count, "latency_ratio": ratio,
                "bytes_per_forward": wire.bytesPerForward,
            ]
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
        }
        network.close()
    }
}
