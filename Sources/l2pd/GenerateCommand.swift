import Foundation
import L2PDCluster
import L2PDDecoding
import L2PDEngine
import L2PDModel

/// Options shared by every command that decodes: declared once, read once.
enum DecodingOptions {
    static let specs: [OptionSpec] = [
        .option("model", "DIR", "Checkpoint directory (Hugging Face LLaDA layout).", default: ModelLocator.defaultDescription),
        .option("gen-length", "N", "Answer canvas length in tokens.", default: "256"),
        .option("block-length", "N", "Semi-autoregressive block length.", default: "32"),
        .option("steps", "N", "Total step budget (the baseline commits gen-length/steps tokens per step).", default: "gen length"),
        .option("cache", "MODE", "K/V cache: none, prefix or dual.", default: "none"),
        .flag("eotp", "End-of-text prediction: drop everything after a predicted end-of-text."),
        .option("eotp-gate", "P", "Only truncate when the end-of-text confidence is at least P."),
        .option("threshold", "TAU", "Confidence threshold of the threshold policy, in (0, 1].", default: "0.9"),
        .option("factor", "F", "Factor of the factor policy.", default: "1.0"),
        .option("filter", "FILE", "Learn2PD filter (safetensors) for --policy learn2pd.", default: ModelLocator.defaultFilterDescription),
        .option("tau", "P", "Filter acceptance threshold of learn2pd, in (0, 1).", default: "the filter's own"),
        .option("temperature", "T", "Gumbel sampling temperature (0: greedy).", default: "0"),
        .option("seed", "N", "Seed for sampling and random remasking.", default: "0"),
        .option("threads", "N", "Compute threads.", default: "\(ProcessInfo.processInfo.activeProcessorCount)"),
    ]

    static func settings(_ o: ParsedOptions) throws -> PolicyFactory.Settings {
        var settings = PolicyFactory.Settings()
        settings.threshold = Float(try o.double("threshold")!)
        settings.factor = Float(try o.double("factor")!)
        guard settings.threshold > 0 && settings.threshold <= 1 else { throw GenerationError.invalidThreshold(settings.threshold) }
        if o.string("tau") != "the filter's own" {
            guard let tau = try o.double("tau"), tau > 0, tau < 1 else { throw UsageError("--tau must be in (0, 1)") }
            settings.tau = Float(tau)
        }
        settings.filter = try ModelLocator.filter(o.string("filter"))
        return settings
    }

    static func cacheMode(_ text: String) throws -> CacheMode {
        guard let mode = CacheMode(rawValue: text) else {
            throw UsageError("unknown cache mode '\(text)' (known: none, prefix, dual)")
        }
        return mode
    }

    /// The request the flags describe (policy given by name); the same shape a coordinator takes.
    static func request(_ o: ParsedOptions, prompt: String, policy: String) throws -> GenerationRequest {
        var r = GenerationRequest(prompt: prompt)
        r.policy = policy
        r.gen_length = try o.positiveInt("gen-length")!
        r.block_length = try o.positiveInt("block-length")!
        if o.string("steps") != "gen length" { r.steps = try o.positiveInt("steps") }
        r.cache = try cacheMode(o.string("cache")!).rawValue
        r.eotp = o.has("eotp")
        r.eotp_gate = try o.double("eotp-gate").map(Float.init)
        r.threshold = Float(try o.double("threshold")!)
        r.factor = Float(try o.double("factor")!)
        r.tau = try settings(o).tau
        r.temperature = Float(try o.double("temperature")!)
        guard r.temperature! >= 0 else { throw UsageError("--temperature must be at least 0") }
        r.seed = UInt64(try o.int("seed")!)
        return r
    }

    /// Generation options from the parsed command line (policy given by name).
    static func generation(_ o: ParsedOptions, policy: String) throws -> GenerationOptions {
        try request(o, prompt: "", policy: policy).options(filter: try settings(o).filter)
    }

    static func generator(_ o: ParsedOptions) throws -> TextGenerator {
        let bundle = try ModelBundle(directory: try ModelLocator.directory(o.string("model")))
        let pipeline = try InProcessPipeline(checkpoint: bundle.checkpoint, threads: try o.positiveInt("threads")!)
        return TextGenerator(tokenizer: bundle.tokenizer, pipeline: pipeline)
    }
}

struct GenerateCommand: Command {
    static let path = ["generate"]
    static let summary = "Generate an answer to a prompt (argument or standard input)."
    static let usage = "l2pd generate [options] [PROMPT...]   (no PROMPT: read standard input)"
    static let options: [OptionSpec] =
        [
            .option(
                "policy", "NAME", "Unmask policy: \(PolicyFactory.names.joined(separator: ", ")) (suffix +eotp allowed).",
                default: "baseline")
        ]
        + DecodingOptions.specs + [
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
            var request = try DecodingOptions.request(o, prompt: prompt, policy: o.string("policy")!)
            request.raw = o.has("raw")
            let finalRequest = request
            let reply = try await Blocking.run { try CoordinatorClient.generate(finalRequest, url: url) }
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
        let options = try DecodingOptions.generation(o, policy: o.string("policy")!)
        let generator = try DecodingOptions.generator(o)
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
                    format: "nfe %d  positions %d  useful tokens %d  tpf %.2f  tps %.1f  %.2f s", s.nfe, s.positions, s.usefulTokens,
                    s.tpf, s.tps, s.seconds))
        }
    }
}
