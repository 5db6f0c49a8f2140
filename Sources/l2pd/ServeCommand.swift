import Foundation
import L2PDCluster
import L2PDCommandLine
import L2PDDecoding
import L2PDEngine
import L2PDModel
import L2PDTransport

/// `l2pd serve`: the coordinator's admission, batching and HTTP API over the whole model in
/// this process: one command, no workers.
struct ServeCommand: Command {
    static let path = ["serve"]
    static let summary = "Serve the model from this process: OpenAI-compatible HTTP API (and nng requests), no workers."
    static let options: [OptionSpec] =
        [
            .option("model", "DIR", "Checkpoint directory (Hugging Face LLaDA layout).", default: ModelLocator.defaultDescription),
            .option("threads", "N", "Compute threads.", default: "\(ProcessInfo.processInfo.activeProcessorCount)"),
            ModelLocator.weightsSpec,
            .option("listen", "URL", "Also answer JSON requests over nng here (as a coordinator does); none: off.", default: "none"),
        ] + ServingOptions.specs

    static func run(_ o: ParsedOptions) async throws {
        let directory = try ModelLocator.directory(o.string("model"))
        let bundle = try ModelBundle(directory: directory)
        let pipeline = try InProcessPipeline(
            checkpoint: bundle.checkpoint, threads: try o.positiveInt("threads")!, weights: try ModelLocator.weightFormat(o))
        let coordinator = Coordinator(
            pipeline: pipeline, tokenizer: bundle.tokenizer, filter: try ModelLocator.filter(o.string("filter")),
            limits: try ServingOptions.admission(o), requestLimits: try ServingOptions.requests(o),
            requestTimeout: try ServingOptions.requestTimeout(o))
        let listen = o.string("listen").flatMap { $0 == "none" ? nil : $0 }
        let name = o.string("model") == ModelLocator.defaultDescription ? "default" : directory.lastPathComponent
        try await ServingOptions.serve(coordinator, o, listen: listen, modelName: name, role: "serve")
    }
}
