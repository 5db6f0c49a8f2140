import Foundation
import L2PDCluster
import L2PDCommandLine
import L2PDDecoding
import L2PDEngine
import L2PDModel
import L2PDTransport

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
        await node.serve()
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
        try await coordinator.pipeline.connect(within: try o.double("connect-timeout")!)
        for w in workers { printError("coordinator: worker \(w.url) serves layers \(w.layers.lowerBound)..<\(w.layers.upperBound)") }
        try await ServingOptions.serve(
            coordinator, o, listen: description.listen, modelName: directory.lastPathComponent, role: "coordinator")
    }
}
