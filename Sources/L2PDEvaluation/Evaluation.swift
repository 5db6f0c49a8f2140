import Foundation
import L2PDDecoding
import L2PDEngine
import L2PDModel
import L2PDTasks

/// One row of the evaluation table (JSON keys as documented for `l2pd eval --json`).
public struct EvaluationRow: Sendable, Codable, Equatable {
    public var policy: String
    public var cache: String
    public var gen_length: Int
    public var eotp: Bool
    /// The policy's parameter and its value in this run (`threshold=0.7`), when it has one.
    public var parameter: String? = nil
    public var accuracy: Double
    public var nfe: Double
    public var positions: Double
    public var tpf: Double
    public var tps: Double
    public var speedup: Double
    /// Accuracy per task family on the run's prompts (family name to share correct).
    public var family_accuracy: [String: Double] = [:]

    /// `threshold+eotp`, or `threshold(0.7)+eotp` in a sweep.
    public var label: String {
        let value = parameter.map { "(" + ($0.split(separator: "=").last.map(String.init) ?? $0) + ")" } ?? ""
        return policy + value + (eotp ? "+eotp" : "")
    }
}

/// The grid `l2pd eval` runs: every policy x cache mode x gen length on the same prompts, and
/// each policy at every value of its parameter listed in `sweep`.
public struct EvaluationPlan: Sendable {
    public var policies: [PolicySpec] = [.baseline]
    public var caches: [CacheMode] = [.none]
    public var genLengths: [Int] = [256]
    public var blockLength = 32
    public var examples: [TaskExample] = []
    public var settings = PolicyFactory.Settings()
    /// Values to sweep per parameter (`threshold`, `factor`, `delta`, `tau`); a parameter
    /// not listed runs once at its value in `settings`.
    public var sweep: [String: [Float]] = [:]
    public var eotpGate: Float? = nil
    /// Run the plain baseline first at each gen length (the speedup reference). Without it,
    /// speedups are 0 and only the listed runs happen.
    public var baselineReference = true

    public init() {}

    public typealias Run = (genLength: Int, policy: PolicySpec, cache: CacheMode, settings: PolicyFactory.Settings)

    /// The runs in order: per gen length, the plain baseline first (the speedup reference),
    /// then every listed combination once, a swept policy once per value.
    public var runs: [Run] {
        var out: [Run] = []
        for g in genLengths {
            if baselineReference { out.append((g, .baseline, .none, settings)) }
            for p in policies {
                for s in settingsGrid(p.name) {
                    for c in caches where !(baselineReference && p == .baseline && c == .none) { out.append((g, p, c, s)) }
                }
            }
        }
        return out
    }

    /// The settings a policy runs with: one per swept value of its parameter.
    func settingsGrid(_ policy: String) -> [PolicyFactory.Settings] {
        guard let parameter = PolicyFactory.parameter(of: policy), let values = sweep[parameter], !values.isEmpty else {
            return [settings]
        }
        return values.map { value in
            var s = settings
            s.set(parameter, value)
            return s
        }
    }
}

/// One answer of an evaluation run (`l2pd eval --answers FILE` writes one JSON line each).
public struct EvaluationAnswer: Sendable, Codable, Equatable {
    /// The run's label: `threshold(0.7)+eotp cache=dual gen=256`.
    public var run: String
    public var prompt_index: Int
    public var family: String
    public var answer: String
    public var correct: Bool
}

public enum Evaluation {
    /// Runs the plan; `progress` receives one line per finished prompt, `answers` every answer.
    public static func run(
        _ plan: EvaluationPlan, generator: TextGenerator, progress: @Sendable (String) -> Void,
        answers: @Sendable (EvaluationAnswer) -> Void = { _ in }
    ) async throws -> [EvaluationRow] {
        for run in plan.runs { _ = try PolicyFactory.make(run.policy.name, settings: run.settings) }
        var rows: [EvaluationRow] = []
        var baselineTPS: [Int: Double] = [:]
        var references: [Int: [Int: [Int]]] = [:]
        let runs = plan.runs
        for (index, run) in runs.enumerated() {
            var options = GenerationOptions()
            options.genLength = run.genLength
            options.blockLength = plan.blockLength
            options.policy = try PolicyFactory.make(run.policy.name, settings: run.settings)
            let parameter = PolicyFactory.parameter(of: run.policy.name).flatMap { name in
                plan.sweep[name] == nil ? nil : run.settings.value(of: name).map { "\(name)=\($0)" }
            }
            options.cache = run.cache
            options.eotp = run.policy.eotp
            options.eotpGate = plan.eotpGate
            var total = GenerationStatistics()
            var correct = 0
            var byFamily: [String: (correct: Int, total: Int)] = [:]
            for (i, example) in plan.examples.enumerated() {
                // An oracle's reference is the plain baseline's answer, which this run already has.
                options.reference = options.policy.needsReference ? references[run.genLength]?[i] : nil
                let output = try await generator.generate(example.prompt, options: options, sequenceID: UInt64(i + 1))
                if run.policy == .baseline && run.cache == .none { references[run.genLength, default: [:]][i] = output.canvas }
                let right = TaskSuite.isCorrect(example, output: output.text)
                answers(
                    EvaluationAnswer(
                        run:
                            "\(run.policy.label)\(parameter.map { "(" + $0 + ")" } ?? "") cache=\(run.cache.rawValue) gen=\(run.genLength)",
                        prompt_index: i, family: example.family.rawValue, answer: output.text, correct: right))
                if right { correct += 1 }
                byFamily[example.family.rawValue, default: (0, 0)].correct += right ? 1 : 0
                byFamily[example.family.rawValue, default: (0, 0)].total += 1
                total.nfe += output.statistics.nfe
                total.positions += output.statistics.positions
                total.usefulTokens += output.statistics.usefulTokens
                total.seconds += output.statistics.seconds
                progress(
                    "[run \(index + 1)/\(runs.count)] \(run.policy.label)\(parameter.map { " " + $0 } ?? "") cache=\(run.cache.rawValue) gen=\(run.genLength): "
                        + "\(i + 1)/\(plan.examples.count) prompts, accuracy \(correct)/\(i + 1)")
            }
            let n = Double(max(plan.examples.count, 1))
            if run.policy == .baseline && run.cache == .none { baselineTPS[run.genLength] = total.tps }
            let reference = baselineTPS[run.genLength] ?? 0
            rows.append(
                EvaluationRow(
                    policy: run.policy.name, cache: run.cache.rawValue, gen_length: run.genLength, eotp: run.policy.eotp,
                    parameter: parameter,
                    accuracy: Double(correct) / n, nfe: Double(total.nfe) / n, positions: Double(total.positions) / n,
                    tpf: total.tpf, tps: total.tps, speedup: reference > 0 ? total.tps / reference : 0,
                    family_accuracy: byFamily.mapValues { Double($0.correct) / Double(max($0.total, 1)) }))
        }
        return rows
    }

    /// The table `l2pd eval` prints.
    public static func table(_ rows: [EvaluationRow]) -> String {
        var lines = [
            "policy                 cache   gen  accuracy       nfe   positions      tpf       tps  speedup",
            String(repeating: "-", count: 93),
        ]
        for r in rows {
            let policy = r.label.padding(toLength: 22, withPad: " ", startingAt: 0)
            lines.append(
                policy + " " + r.cache.padding(toLength: 6, withPad: " ", startingAt: 0)
                    + String(
                        format: " %5d  %7.3f  %8.1f  %10.0f  %7.2f  %8.1f  %6.2fx", r.gen_length, r.accuracy, r.nfe, r.positions, r.tpf,
                        r.tps, r.speedup))
        }
        // Per-family accuracy, one column per family, when the prompts span several.
        let families = TaskFamily.allCases.map(\.rawValue).filter { f in rows.contains { $0.family_accuracy[f] != nil } }
        if families.count > 1 {
            lines.append("")
            lines.append(
                "accuracy by family".padding(toLength: 33, withPad: " ", startingAt: 0)
                    + families.map { $0.padding(toLength: 9, withPad: " ", startingAt: 0) }.joined())
            for r in rows {
                let label = "\(r.label) \(r.cache) \(r.gen_length)"
                lines.append(
                    label.padding(toLength: 33, withPad: " ", startingAt: 0)
                        + families.map { f in r.family_accuracy[f].map { String(format: "%-9.3f", $0) } ?? "-        " }.joined())
            }
        }
        return lines.joined(separator: "\n")
    }
}
