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
    static let summary =
        "Run the same prompts in-process and through N local workers (chained and relayed passes); compare tokens, latency, bytes."
    static let options: [OptionSpec] = [
        .option("workers", "N", "Local worker processes (loopback).", default: "2"),
        .option(
            "links", "MODE",
            "chained (workers pass hidden states on), relay (through the coordinator), or both (interleaved, one worker set each).",
            default: "both"),
        .option("policy", "NAME", "Unmask policy (suffix +eotp allowed).", default: "threshold"),
        .option("cache", "MODE", "K/V cache: none, prefix or dual.", default: "dual"),
        .option("limit", "N", "Prompts from the evaluation split.", default: "10"),
        .option("gen-length", "N", "Answer canvas length.", default: "256"),
        .option("worker-threads", "N", "Compute threads per worker.", default: "1"),
        .option("model", "DIR", "Checkpoint directory.", default: ModelLocator.defaultDescription),
        .flag(
            "json",
            "End with one JSON line: workers, prompts, identical, latency_ratio, bytes_per_forward, transits_per_forward (chained when run), and relay_* for relayed passes."
        ),
    ]

    static func run(_ o: ParsedOptions) async throws {
        let n = try o.positiveInt("workers")!
        let workerThreads = try o.positiveInt("worker-threads")!
        let modes: [StageLinks]
        switch o.string("links")! {
        case "both": modes = [.relay, .chained]
        case let name:
            guard let mode = StageLinks(rawValue: name) else { throw UsageError("--links must be chained, relay or both, got '\(name)'") }
            modes = [mode]
        }
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

        // One set of workers per link mode: a worker serves one coordinator at a time.
        var workerSets: [LocalWorkers] = []
        defer { workerSets.forEach { $0.stop() } }
        var networks: [NetworkPipeline] = []
        defer { networks.forEach { $0.close() } }
        for mode in modes {
            let workers = try LocalWorkers(
                count: n, arguments: ["--threads", "\(workerThreads)"] + (modelArgument.map { ["--model", $0] } ?? []))
            workerSets.append(workers)
            let endpoints = zip(workers.urls, LayerPlan.even(layers: bundle.checkpoint.config.layers, stages: n)).map {
                WorkerEndpoint(url: $0, layers: $1)
            }
            let network = try NetworkPipeline(
                config: bundle.checkpoint.config, fingerprint: try ModelFingerprint.of(directory: directory), workers: endpoints,
                links: mode)
            try await network.connect(within: 30)
            networks.append(network)
        }
        let local = TextGenerator(
            tokenizer: bundle.tokenizer, pipeline: try InProcessPipeline(checkpoint: bundle.checkpoint, threads: workerThreads))
        let clusters = networks.map { TextGenerator(tokenizer: bundle.tokenizer, pipeline: $0) }
        var identical = Array(repeating: 0, count: modes.count)
        var localSeconds = 0.0
        var clusterSeconds = Array(repeating: 0.0, count: modes.count)
        let progress = Progress("bench cluster", total: examples.count)
        for (i, example) in examples.enumerated() {
            // Interleaved, the order turning with each prompt, so a busy moment falls on every side.
            let a = try await local.generate(example.prompt, options: options, sequenceID: UInt64(i + 1))
            localSeconds += a.statistics.seconds
            for k in modes.indices.map({ ($0 + i) % modes.count }) {
                let b = try await clusters[k].generate(example.prompt, options: options, sequenceID: UInt64(i + 1))
                if a.tokens == b.tokens { identical[k] += 1 }
                clusterSeconds[k] += b.statistics.seconds
            }
            progress.update(i + 1, extra: "identical " + identical.map { "\($0)/\(i + 1)" }.joined(separator: ", "))
        }
        let count = Double(max(examples.count, 1))
        let ratios = clusterSeconds.map { localSeconds > 0 ? $0 / localSeconds : 0 }
        let wires = networks.map(\.statistics)
        print(
            "workers \(n) (\(workerThreads) thread(s) each), policy \(parameters.policy!), cache \(parameters.cache!), gen length \(parameters.genLength!)"
        )
        func row(_ name: String, _ local: String, _ values: [String]) {
            print(
                name.padding(toLength: 20, withPad: " ", startingAt: 0) + local.leftPadded(14)
                    + values.map { "   " + $0.leftPadded(14) }.joined())
        }
        row("", "in-process", modes.map(\.rawValue))
        row(
            "latency (ms/request)", String(format: "%.1f", 1000 * localSeconds / count),
            clusterSeconds.map { String(format: "%.1f", 1000 * $0 / count) })
        row("latency ratio", "1.000", ratios.map { String(format: "%.3f", $0) })
        row("identical prompts", "", identical.map { "\($0)/\(examples.count)" })
        row("forwards", "", wires.map { "\($0.forwards)" })
        row("coordinator B/fwd", "", wires.map { String(format: "%.0f", $0.bytesPerForward) })
        row("round trip ms/fwd", "", wires.map { String(format: "%.3f", 1000 * $0.roundTripSeconds / Double(max($0.forwards, 1))) })
        row("transits/forward", "", wires.map { String(format: "%.2f", $0.transitsPerForward) })
        print("(coordinator B/fwd: bytes the coordinator sent and received per forward pass; transits: frames that crossed a link)")
        if o.has("json") {
            var object: [String: Any] = ["workers": n, "prompts": examples.count]
            for (k, mode) in modes.enumerated() {
                let prefix = mode == .relay && modes.count > 1 ? "relay_" : ""
                object[prefix + "identical"] = identical[k] == examples.count
                object[prefix + "latency_ratio"] = ratios[k]
                object[prefix + "bytes_per_forward"] = wires[k].bytesPerForward
                object[prefix + "transits_per_forward"] = wires[k].transitsPerForward
                if modes.count == 1 { object["links"] = mode.rawValue }
            }
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
        }
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String { String(repeating: " ", count: max(0, width - count)) + self }
}
