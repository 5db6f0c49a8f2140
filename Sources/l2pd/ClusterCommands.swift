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
        .option(
            "listen", "URL", "Address to listen on (tcp://HOST:PORT, tls+tcp://HOST:PORT with --tls-cert and --tls-key, ipc://PATH).",
            default: "tcp://127.0.0.1:7701"),
        .option(
            "stage-listen", "URL",
            "Address the stages before this one send chained passes to (default: --listen's port + 100; the cluster file's stage_url must match)."
        ),
        .option("tls-cert", "FILE", "This worker's certificate (PEM), for a tls+tcp:// address."),
        .option("tls-key", "FILE", "The certificate's private key (PEM, unencrypted)."),
        .option(
            "tls-ca", "FILE",
            "Require coordinators and earlier stages to present a certificate signed by this CA (mutual TLS); also verifies the next stage's in chained passes."
        ),
        .option("model", "DIR", "Checkpoint directory (Hugging Face LLaDA layout).", default: ModelLocator.defaultDescription),
        .option("threads", "N", "Compute threads of this worker.", default: "1"),
        ModelLocator.weightsSpec,
        .flag("quiet", "Log nothing but errors."),
        .option("max-cached-sequences", "N", "K/V caches kept at most; the least recently used beyond is dropped.", default: "64"),
        .option("max-cache-mib", "N", "K/V cache memory at most, in MiB.", default: "4096"),
        .option(
            "cluster", "FILE",
            "Cluster file whose 'secret' a coordinator must prove (else the L2PD_CLUSTER_TOKEN environment variable; neither: any coordinator holding the model)."
        ),
    ]

    static func run(_ o: ParsedOptions) async throws {
        let url = o.string("listen")!
        let quiet = o.has("quiet")
        let cacheLimits = CacheLimits(
            maxSequences: try o.positiveInt("max-cached-sequences")!, maxBytes: try o.positiveInt("max-cache-mib")! << 20)
        let secret =
            try o.string("cluster").flatMap { try ClusterDescription.load(URL(fileURLWithPath: $0)).secret }
            ?? ClusterSecret.fromEnvironment
        let files = TLSFiles(ca: o.string("tls-ca"), certificate: o.string("tls-cert"), key: o.string("tls-key"))
        let tls = files == TLSFiles() ? nil : try TLSConfiguration(files, role: .server)
        let node = try WorkerNode(
            listen: url, stageURL: o.string("stage-listen"), modelDirectory: try ModelLocator.directory(o.string("model")),
            threads: try o.positiveInt("threads")!,
            cacheLimits: cacheLimits, clusterSecret: secret, weights: try ModelLocator.weightFormat(o), tls: tls
        ) { line in if !quiet { printError("worker \(url): \(line)") } }
        StopSignals.install("worker \(url)", quiet: quiet)
        let tlsNote = tls == nil ? "" : files.ca == nil ? ", TLS" : ", mutual TLS"
        let stages = (o.string("stage-listen") ?? StageAddress.derived(from: url)).map { ", earlier stages at \($0)" } ?? ""
        if !quiet { printError("worker \(url): listening\(stages)\(secret == nil ? "" : " (cluster secret required)")\(tlsNote)") }
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
            .option(
                "retry-window", "SECONDS",
                "How long a request whose worker was lost waits for it (or a replica) to serve again; 0: fail at once.", default: "10"),
            .option("heartbeat-interval", "SECONDS", "Seconds between heartbeats to each worker; 0: none.", default: "0.5"),
            .option("heartbeat-misses", "N", "Heartbeats a worker may miss before it is marked down.", default: "3"),
        ] + ServingOptions.specs

    static func run(_ o: ParsedOptions) async throws {
        let description = try ClusterDescription.load(URL(fileURLWithPath: o.string("cluster")!))
        let directory = try ModelLocator.directory(description.model == "default" ? nil : description.model)
        let config = try ModelConfig.load(from: directory.appendingPathComponent("config.json"))
        let workers = try description.endpoints(layers: config.layers)
        let retryWindow = try o.double("retry-window")!
        let heartbeat = try o.double("heartbeat-interval")!
        let timeout = try o.double("timeout")!
        guard retryWindow >= 0, retryWindow <= 86_400 else { throw UsageError("--retry-window must be between 0 and 86400 seconds") }
        guard heartbeat >= 0, heartbeat <= 3600 else { throw UsageError("--heartbeat-interval must be between 0 and 3600 seconds") }
        guard timeout > 0, timeout <= 86_400 else { throw UsageError("--timeout must be above 0 and at most 86400 seconds") }
        let tolerance = FaultTolerance(
            retryWindow: retryWindow, heartbeatInterval: heartbeat, heartbeatMisses: try o.positiveInt("heartbeat-misses")!)
        let coordinator = try Coordinator(
            modelDirectory: directory, workers: workers, filter: try ModelLocator.filter(o.string("filter")),
            timeout: timeout, faultTolerance: tolerance, clusterSecret: description.secret ?? ClusterSecret.fromEnvironment,
            tls: try description.tls.map { try TLSConfiguration($0, role: .client) }, links: description.links,
            limits: try ServingOptions.admission(o), requestLimits: try ServingOptions.requests(o),
            requestTimeout: try ServingOptions.requestTimeout(o)
        ) { line in printError("coordinator: \(line)") }
        try await coordinator.pipeline.connect(within: try o.double("connect-timeout")!)
        for w in workers { printError("coordinator: worker \(w.url) serves layers \(w.layers.lowerBound)..<\(w.layers.upperBound)") }
        printError(
            description.links == .chained
                ? "coordinator: passes are chained (each worker sends its hidden states to the next stage)"
                : "coordinator: passes are relayed (each stage answers the coordinator)")
        try await ServingOptions.serve(
            coordinator, o, listen: description.listen, modelName: directory.lastPathComponent, role: "coordinator")
    }
}
