import Foundation
import L2PDCluster
import L2PDCommandLine
import L2PDDecoding
import L2PDEngine
import L2PDModel

/// Options shared by every command that decodes: the decoding flags (declared and mapped once
/// in `DecodingFlags`) plus where the model, filter and threads come from.
enum DecodingOptions {
    static let specs: [OptionSpec] =
        DecodingFlags.specs + [
            .option("model", "DIR", "Checkpoint directory (Hugging Face LLaDA layout).", default: ModelLocator.defaultDescription),
            .option(
                "filter", "FILE", "Learn2PD filter (safetensors) for --policy learn2pd.", default: ModelLocator.defaultFilterDescription),
            .option("threads", "N", "Compute threads.", default: "\(ProcessInfo.processInfo.activeProcessorCount)"),
            ModelLocator.weightsSpec,
        ]

    /// Policy settings from the flags, validated (eval grids build policies from these).
    static func settings(_ o: ParsedOptions) throws -> PolicyFactory.Settings {
        let p = try DecodingFlags.parameters(o)
        var settings = PolicyFactory.Settings()
        settings.threshold = p.threshold ?? DecodingParameters.defaultThreshold
        settings.factor = p.factor ?? DecodingParameters.defaultFactor
        settings.delta = p.delta ?? DecodingParameters.defaultDelta
        settings.tau = p.tau
        try PolicyFactory.validate(settings)
        settings.filter = try ModelLocator.filter(o.string("filter"))
        return settings
    }

    static func cacheMode(_ text: String) throws -> CacheMode {
        guard let mode = CacheMode(rawValue: text) else {
            throw UsageError("unknown cache mode '\(text.prefix(32))' (known: none, prefix, dual)")
        }
        return mode
    }

    /// The request the flags describe; the same type every other door builds.
    static func request(_ o: ParsedOptions, prompt: String) throws -> GenerationRequest {
        GenerationRequest(prompt: prompt, raw: o.has("raw") ? true : nil, parameters: try DecodingFlags.parameters(o))
    }

    static func generator(_ o: ParsedOptions) throws -> TextGenerator {
        let bundle = try ModelBundle(directory: try ModelLocator.directory(o.string("model")))
        let pipeline = try InProcessPipeline(
            checkpoint: bundle.checkpoint, threads: try o.positiveInt("threads")!, weights: try ModelLocator.weightFormat(o))
        return TextGenerator(tokenizer: bundle.tokenizer, pipeline: pipeline)
    }
}

struct GenerateCommand: Command {
    static let path = ["generate"]
    static let summary = "Generate an answer to a prompt (argument or standard input)."
    static let usage = "l2pd generate [options] [PROMPT...]   (no PROMPT: read standard input)"
    static let options: [OptionSpec] =
        DecodingOptions.specs + [
            .flag("raw", "Send the prompt as is, without the LLaDA-Instruct chat format."),
            .flag("stats", "Print NFE, positions, TPF, TPS and time on standard error."),
            .flag("json", "Print one JSON object: text, tokens, nfe, positions, tpf, tps, seconds."),
            .flag("visualize", "Show the canvas filling in live (masked dim, this step's commits highlighted)."),
            .option("coordinator", "URL", "Send the request to a cluster coordinator instead of running the model here."),
        ]

    static func run(_ o: ParsedOptions) async throws {
        var prompt = o.arguments.joined(separator: " ")
        if prompt.isEmpty || prompt == "-" {
            prompt = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
        }
        if let url = o.string("coordinator") {
            let finalRequest = try DecodingOptions.request(o, prompt: prompt)
            let reply = try await CoordinatorClient(url: url).generate(finalRequest)
            if o.has("json") {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                print(String(decoding: try encoder.encode(reply), as: UTF8.self))
            } else {
                print(reply.text)
            }
            if o.has("stats") {
                printError(
                    String(
                        format: "nfe %d  positions %d  useful tokens %d  tpf %.2f  tps %.1f  %.2f s", reply.nfe, reply.positions,
                        reply.useful_tokens, reply.tpf, reply.tps, reply.seconds))
            }
            return
        }
        let request = try DecodingOptions.request(o, prompt: prompt)
        let generator = try DecodingOptions.generator(o)
        let options = try request.validated(
            limits: .unbounded, maxSequenceLength: generator.decoder.pipeline.config.maxSequenceLength,
            filter: try ModelLocator.filter(o.string("filter")))
        var onStep: (@Sendable (StepEvent) -> Void)? = nil
        if o.has("visualize") {
            let config = generator.decoder.pipeline.config
            let view = CanvasView(tokenizer: generator.tokenizer, maskTokenID: config.maskTokenID, eosTokenID: config.eosTokenID)
            onStep = { event in view.draw(event) }
        }
        let output = try await generator.generate(prompt, raw: o.has("raw"), options: options, onStep: onStep)
        let s = output.statistics
        if o.has("json") {
            let object: [String: Any] = [
                "text": output.text, "tokens": output.tokens, "nfe": s.nfe, "positions": s.positions, "tpf": s.tpf,
                "tps": s.tps, "seconds": s.seconds,
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(output.text)
        }
        if o.has("stats") {
            printError(
                String(
                    format: "%@  nfe %d  positions %d  useful tokens %d  tpf %.2f  tps %.1f  %.2f s", options.label, s.nfe, s.positions,
                    s.usefulTokens, s.tpf, s.tps, s.seconds))
        }
    }
}
