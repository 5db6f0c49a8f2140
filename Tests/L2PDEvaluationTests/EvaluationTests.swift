import Foundation
import L2PDDecoding
import L2PDDefaultModel
import L2PDModel
import L2PDTasks
import Testing

@testable import L2PDCluster
@testable import L2PDEngine
@testable import L2PDEvaluation

@Suite struct EvaluationTests {
    /// The grid runs the plain baseline first per gen length (the speedup reference), then each
    /// listed combination once, never the baseline twice.
    @Test func thePlanRunsTheBaselineFirstAndEveryCombinationOnce() throws {
        var plan = EvaluationPlan()
        plan.policies = [.baseline, try PolicySpec(parsing: "threshold+eotp")]
        plan.caches = [.none, .dual]
        plan.genLengths = [64, 128]
        let runs = plan.runs.map { "\($0.genLength) \($0.policy.label) \($0.cache.rawValue)" }
        #expect(
            runs == [
                "64 baseline none", "64 baseline dual", "64 threshold+eotp none", "64 threshold+eotp dual",
                "128 baseline none", "128 baseline dual", "128 threshold+eotp none", "128 threshold+eotp dual",
            ])
    }

    /// Without the baseline reference only the listed runs happen (a listed baseline included).
    @Test func withoutTheReferenceOnlyTheListedRunsHappen() throws {
        var plan = EvaluationPlan()
        plan.baselineReference = false
        plan.policies = [try PolicySpec(parsing: "learn2pd+eotp"), .baseline]
        plan.genLengths = [1024]
        #expect(
            plan.runs.map { "\($0.genLength) \($0.policy.label) \($0.cache.rawValue)" } == [
                "1024 learn2pd+eotp none", "1024 baseline none",
            ])
    }

    /// A swept parameter runs each policy that reads it once per value, and only those.
    @Test func aSweptParameterRunsItsPolicyOncePerValue() throws {
        var plan = EvaluationPlan()
        plan.policies = [try PolicySpec(parsing: "threshold"), try PolicySpec(parsing: "frechet+eotp"), try PolicySpec(parsing: "factor")]
        plan.sweep = ["threshold": [0.5, 0.9], "delta": [0, 0.5]]
        plan.settings.factor = 2
        let runs = plan.runs.map { "\($0.policy.label) \($0.settings.threshold) \($0.settings.delta) \($0.settings.factor)" }
        #expect(
            runs == [
                "baseline 0.9 0.25 2.0", "threshold 0.5 0.25 2.0", "threshold 0.9 0.25 2.0", "frechet+eotp 0.9 0.0 2.0",
                "frechet+eotp 0.9 0.5 2.0", "factor 0.9 0.25 2.0",
            ])
    }

    /// A small grid on the default model: the baseline's speedup is 1 by definition, every
    /// accuracy is the share of answers the task suite's checker accepts, and the table and the
    /// Pareto picture show every row.
    @Test func aSmallGridMeasuresAccuracyAgainstTheTaskChecker() async throws {
        let bundle = try ModelBundle(directory: try #require(DefaultModel.directory))
        let generator = TextGenerator(tokenizer: bundle.tokenizer, pipeline: try InProcessPipeline(checkpoint: bundle.checkpoint))
        var plan = EvaluationPlan()
        plan.policies = [try PolicySpec(parsing: "threshold")]
        plan.genLengths = [32]
        plan.examples = TaskSuite.examples(split: .eval, count: 4, seed: 5)
        let collected = AnswerBox()
        let rows = try await Evaluation.run(plan, generator: generator) { _ in
        } answers: {
            collected.append($0)
        }
        #expect(rows.count == 2)
        // One answer per run and prompt, whose correct flags add up to the row's accuracy.
        let answers = collected.all
        #expect(answers.count == 2 * plan.examples.count)
        #expect(Set(answers.map(\.run)) == ["baseline cache=none gen=32", "threshold cache=none gen=32"])
        #expect(Double(answers.filter { $0.run.hasPrefix("baseline") && $0.correct }.count) / 4 == rows[0].accuracy)
        #expect(rows[0].policy == "baseline" && rows[0].speedup == 1)
        // The baseline's accuracy, recomputed from its own answers.
        var options = GenerationOptions()
        options.genLength = 32
        var correct = 0
        var byFamily: [String: Double] = [:]
        for (i, example) in plan.examples.enumerated() {
            let output = try await generator.generate(example.prompt, options: options, sequenceID: UInt64(i + 1))
            let right = TaskSuite.isCorrect(example, output: output.text)
            if right { correct += 1 }
            byFamily[example.family.rawValue] = right ? 1 : 0  // one prompt per family here
        }
        #expect(Set(plan.examples.map(\.family)).count == 4)
        #expect(rows[0].accuracy == Double(correct) / 4)
        #expect(rows[0].family_accuracy == byFamily)
        #expect(rows.allSatisfy { $0.nfe >= 1 && $0.tpf > 0 })
        let table = Evaluation.table(rows)
        // The grid's rows, then a blank line, a header and one row per run by family.
        #expect(table.split(separator: "\n", omittingEmptySubsequences: false).count == 2 + rows.count + 2 + rows.count)
        let svg = ParetoPlot.svg(rows)
        #expect(svg.hasPrefix("<svg") && svg.contains("threshold"))
    }

    @Test func percentilesUseTheNearestRank() {
        let values = (1...100).map(Double.init).shuffled()
        #expect(LoadTest.percentile(values, 50) == 50)
        #expect(LoadTest.percentile(values, 90) == 90)
        #expect(LoadTest.percentile(values, 99) == 99)
        #expect(LoadTest.percentile([3, 1, 2], 50) == 2)
        #expect(LoadTest.percentile([], 50) == 0)
    }

    /// A fake coordinator that answers every third request "busy" and the rest correctly for
    /// even-numbered prompts: the report counts exactly that.
    @Test(arguments: [LoadTestArrivals.concurrency(3), .rate(2000)])
    func aLoadTestCountsOutcomesTokensAndAccuracy(arrivals: LoadTestArrivals) async {
        let examples = TaskSuite.examples(split: .eval, count: 12, seed: 3)
        // The index leads each prompt: the suite may repeat a prompt, the fake must not confuse them.
        let prompts = examples.enumerated().map { LoadTestPrompt(prompt: "\($0)|\($1.prompt)", example: $1) }
        let report = await LoadTest.run(
            plan: LoadTestPlan(requests: 12, arrivals: arrivals), prompts: prompts, template: GenerationRequest(prompt: "")
        ) {
            request in
            let i = Int(request.prompt.prefix { $0 != "|" })!
            if i % 3 == 2 { throw CoordinatorRefusal(kind: "busy", message: "busy") }
            var statistics = GenerationStatistics()
            statistics.nfe = 4
            statistics.usefulTokens = 10
            statistics.seconds = 0.01
            let text = i % 2 == 0 ? examples[i].answer : "wrong"
            let reply = GenerationReply(TextGenerator.Output(text: text, tokens: [1, 2, 3], canvas: [], statistics: statistics))
            return LoadTestReply(reply, firstBlockSeconds: Double(i) / 100)
        }
        #expect(report.requests == 12)
        #expect(report.ok == 8 && report.failed == 4)
        #expect(report.failed_by_kind == ["busy": 4])
        #expect(report.latencies.count == 8)
        #expect(report.mean_nfe == 4)
        #expect(report.accuracy == 4.0 / 8.0)  // prompts 0, 4, 6, 10 of the eight answered
        #expect(abs(report.tokens_per_s * report.seconds - 80) < 1e-6)
        // First blocks at i/100 s for the eight answered prompts 0, 1, 3, 4, 6, 7, 9, 10.
        #expect(report.first_block_p50 == 0.04 && report.first_block_p99 == 0.10)
    }
}

final class AnswerBox: @unchecked Sendable {
    private let lock = NSLock()
    private var answers: [EvaluationAnswer] = []
    func append(_ a: EvaluationAnswer) { lock.withLock { answers.append(a) } }
    var all: [EvaluationAnswer] { lock.withLock { answers } }
}
