import Foundation
import L2PDCluster
import L2PDCommandLine
import L2PDDecoding
import L2PDEngine
import L2PDModel
import L2PDTasks
import L2PDTransport

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

        let workers = try LocalWorkers(
            count: n, arguments: ["--threads", "\(workerThreads)"] + (modelArgument.map { ["--model", $0] } ?? []))
        defer { workers.stop() }
        let endpoints = zip(workers.urls, LayerPlan.even(layers: bundle.checkpoint.config.layers, stages: n)).map {
            WorkerEndpoint(url: $0, layers: $1)
        }
        let network = try NetworkPipeline(
            config: bundle.checkpoint.config, fingerprint: try ModelFingerprint.of(directory: directory), workers: endpoints)
        try await network.connect(within: 30)
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
