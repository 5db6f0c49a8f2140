import Foundation
import L2PDCommandLine
import L2PDDecoding
import L2PDEngine
import L2PDEvaluation
import L2PDTasks

struct EvalCommand: Command {
    static let path = ["eval"]
    static let summary = "Run policies x cache modes x gen lengths on the task suite's evaluation split; print one table."
    static let options: [OptionSpec] =
        [
            .option("policies", "LIST", "Comma-separated policies, each optionally +eotp.", default: "baseline,threshold,factor"),
            .option("limit", "N", "Prompts from the evaluation split.", default: "50"),
            .option(
                "task", "LIST", "Task families (default: all): \(TaskFamily.allCases.map(\.rawValue).joined(separator: ", ")).",
                default: nil),
            .option("task-seed", "N", "Seed of the evaluation prompts.", default: "1"),
            .option("json", "FILE", "Write {\"rows\": [...]} to FILE."),
            .option("answers", "FILE", "Write every answer to FILE, one JSON line each (run, prompt_index, family, answer, correct)."),
            .option("plot", "FILE", "Draw accuracy against TPF for every row (SVG)."),
            .flag("no-reference", "Skip the plain baseline run that speedups are measured against (speedup 0)."),
        ]
        + DecodingOptions.specs.map { spec in
            switch spec.name {
            case "gen-length": return .option("gen-length", "LIST", "Comma-separated gen lengths.", default: "256")
            case "cache": return .option("cache", "LIST", "Comma-separated cache modes.", default: "none")
            case let name where sweptParameters.contains(name):
                return .option(
                    name, "LIST", spec.help + " A comma-separated list runs the policy once per value.", shown: spec.defaultValue ?? "")
            default: return spec
            }
        }.filter { !["policy", "steps", "eotp", "temperature", "seed"].contains($0.name) }

    /// Policy parameters `eval` sweeps when given a list.
    static let sweptParameters = ["threshold", "factor", "delta", "tau"]

    /// The base settings, and each listed parameter's values in `plan.sweep`, every value checked
    /// by the same validation as every other door.
    static func sweepSettings(_ o: ParsedOptions, into plan: inout EvaluationPlan) throws -> PolicyFactory.Settings {
        var settings = PolicyFactory.Settings()
        for name in sweptParameters {
            let values = try o.list(name).map { text -> Float in
                guard let value = Double(text), value.isFinite, abs(value) <= Double(Float.greatestFiniteMagnitude) else {
                    throw UsageError("--\(name) expects numbers, got '\(text.prefix(40))'")
                }
                return Float(value)
            }
            guard let first = values.first else { continue }
            for value in values {
                var checked = settings
                checked.set(name, value)
                try PolicyFactory.validate(checked)
            }
            settings.set(name, first)
            plan.sweep[name] = values
        }
        settings.filter = try ModelLocator.filter(o.string("filter"))
        return settings
    }

    static func run(_ o: ParsedOptions) async throws {
        var plan = EvaluationPlan()
        plan.policies = try o.list("policies").map(PolicySpec.init(parsing:))
        plan.caches = try o.list("cache").map(DecodingOptions.cacheMode)
        plan.genLengths = try o.list("gen-length").map {
            guard let g = Int($0), g > 0 else { throw UsageError("--gen-length expects positive integers, got '\($0)'") }
            return g
        }
        plan.blockLength = try o.positiveInt("block-length") ?? DecodingParameters.defaultBlockLength
        plan.baselineReference = !o.has("no-reference")
        plan.settings = try sweepSettings(o, into: &plan)
        plan.eotpGate = try o.double("eotp-gate").map(Float.init)
        let families = try o.list("task").map {
            guard let family = TaskFamily(rawValue: $0) else {
                throw UsageError("unknown task '\($0)' (known: \(TaskFamily.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            return family
        }
        plan.examples = TaskSuite.examples(
            split: .eval, count: try o.positiveInt("limit")!, seed: UInt64(try o.int("task-seed")!),
            families: families.isEmpty ? TaskFamily.allCases : families)
        for run in plan.runs { _ = try PolicyFactory.make(run.policy.name, settings: run.settings) }
        let generator = try DecodingOptions.generator(o)
        printError("eval: \(plan.runs.count) runs x \(plan.examples.count) prompts")
        let progress = Progress("eval", total: plan.runs.count * plan.examples.count)
        let answerLines = AnswerLines()
        let rows = try await Evaluation.run(plan, generator: generator) { line in
            progress.advance(extra: line)
        } answers: {
            answerLines.append($0)
        }
        if let path = o.string("answers") {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let text = try answerLines.all.map { String(decoding: try encoder.encode($0), as: UTF8.self) }.joined(separator: "\n")
            try (text + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        }
        print(Evaluation.table(rows))
        if let path = o.string("json") {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(["rows": rows]).write(to: URL(fileURLWithPath: path))
        }
        if let path = o.string("plot") {
            try ParetoPlot.svg(rows).write(toFile: path, atomically: true, encoding: .utf8)
        }
    }
}

struct TasksExportCommand: Command {
    static let path = ["tasks", "export"]
    static let summary = "Write task-suite examples as JSONL (family, prompt, answer, expected)."
    static let options: [OptionSpec] = [
        .option("split", "NAME", "train or eval.", default: "train"),
        .option("count", "N", "Examples to write.", default: "1000"),
        .option("seed", "N", "Generator seed.", default: "1"),
        .option("task", "LIST", "Task families (default: all).", default: nil),
        .option("out", "FILE", "Output file (default: standard output)."),
    ]

    static func run(_ o: ParsedOptions) async throws {
        guard let split = TaskSplit(rawValue: o.string("split")!) else { throw UsageError("--split must be train or eval") }
        let families = try o.list("task").map {
            guard let family = TaskFamily(rawValue: $0) else { throw UsageError("unknown task '\($0)'") }
            return family
        }
        let examples = TaskSuite.examples(
            split: split, count: try o.positiveInt("count")!, seed: UInt64(try o.int("seed")!),
            families: families.isEmpty ? TaskFamily.allCases : families)
        let text = examples.map(TaskSuite.jsonLine).joined(separator: "\n") + "\n"
        if let path = o.string("out") {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            printError("tasks export: wrote \(examples.count) \(split.rawValue) examples to \(path)")
        } else {
            FileHandle.standardOutput.write(Data(text.utf8))
        }
    }
}

struct TasksListCommand: Command {
    static let path = ["tasks", "list"]
    static let summary = "What the model can do: each task family with an example and its accuracy, measured now."
    static let options: [OptionSpec] =
        [.option("measure", "N", "Evaluation prompts per family to measure accuracy on (0: skip).", default: "20")]
        + DecodingOptions.specs

    static func run(_ o: ParsedOptions) async throws {
        let count = try o.nonNegativeInt("measure")!
        let generator = try DecodingOptions.generator(o)
        let parameters = try DecodingFlags.parameters(o)
        let options = try parameters.options(
            maxSequenceLength: generator.decoder.pipeline.config.maxSequenceLength, filter: try ModelLocator.filter(o.string("filter")))
        let label = "\(options.policy.name)\(options.eotp ? "+eotp" : "") cache=\(options.cache.rawValue) gen=\(options.genLength)"
        if count > 0 { printError("tasks list: measuring \(label) on \(count) evaluation prompts per family") }
        let progress = Progress("tasks list", total: count * TaskFamily.allCases.count)
        for family in TaskFamily.allCases {
            let example = TaskSuite.examples(split: .eval, count: 1, seed: 2, families: [family])[0]
            print("\(family.rawValue): \(family.summary)")
            print("  prompt:   \(example.prompt)")
            print(family.mechanism == .choice ? "  one answer of several: \(example.answer)" : "  expected: \(example.answer)")
            guard count > 0 else { continue }
            var correct = 0
            for (i, e) in TaskSuite.examples(split: .eval, count: count, seed: 1, families: [family]).enumerated() {
                let output = try await generator.generate(e.prompt, options: options, sequenceID: UInt64(i + 1))
                if TaskSuite.isCorrect(e, output: output.text) { correct += 1 }
                progress.advance()
            }
            print(String(format: "  accuracy: %d/%d (%.2f) with %@", correct, count, Double(correct) / Double(count), label))
        }
        print("Prompts outside these families get answers in the same shapes (often a number), not conversation:")
        print("the embedded model knows only its task suite.")
    }
}

/// Answers collected across the evaluation's runs (appended from one task at a time).
final class AnswerLines: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [EvaluationAnswer] = []
    func append(_ answer: EvaluationAnswer) { lock.withLock { lines.append(answer) } }
    var all: [EvaluationAnswer] { lock.withLock { lines } }
}
