import Foundation
import L2PDCluster
import L2PDEngine
import L2PDTasks
import L2PDTransport

/// One prompt of a load test; `example` (when known) lets the answer be checked.
public struct LoadTestPrompt: Sendable {
    public var prompt: String
    public var example: TaskExample?
    public init(prompt: String, example: TaskExample? = nil) {
        self.prompt = prompt
        self.example = example
    }
}

/// How traffic arrives: a fixed number of clients sending back to back, or Poisson arrivals.
public enum LoadTestArrivals: Sendable, Equatable {
    case concurrency(Int)
    case rate(Double)
}

public struct LoadTestPlan: Sendable {
    public var requests: Int
    public var arrivals: LoadTestArrivals
    /// No new request starts after this many seconds (requests in flight finish).
    public var duration: Double?
    public var seed: UInt64 = 1
    public init(requests: Int, arrivals: LoadTestArrivals, duration: Double? = nil) {
        self.requests = requests
        self.arrivals = arrivals
        self.duration = duration
    }
}

/// What a load test measured; the JSON shape `l2pd loadtest --json` writes.
public struct LoadTestReport: Sendable, Codable, Equatable {
    public var requests = 0
    public var ok = 0
    public var failed = 0
    public var failed_by_kind: [String: Int] = [:]
    public var concurrency: Int?
    public var rate: Double?
    public var seconds = 0.0
    public var requests_per_s = 0.0
    public var tokens_per_s = 0.0
    public var latency_p50 = 0.0
    public var latency_p90 = 0.0
    public var latency_p99 = 0.0
    /// Time to the first committed block of text (streaming HTTP targets; nil otherwise).
    public var first_block_p50: Double?
    public var first_block_p90: Double?
    public var first_block_p99: Double?
    public var mean_nfe = 0.0
    public var mean_tpf = 0.0
    /// Share of checked answers that were correct; nil when no prompt could be checked.
    public var accuracy: Double?
    public var latencies: [Double] = []
    /// Each request's answer text by request number (nil: it failed).
    public var answers: [String?] = []
    /// What the server survived during the run (`/metrics` of an HTTP target; nil otherwise).
    public var workers_lost: Int?
    public var passes_retried: Int?
    public var requests_moved: Int?
}

/// What one sent request brought back.
public struct LoadTestReply: Sendable {
    public var reply: GenerationReply
    /// Seconds from sending to the first committed block of text (streaming targets only).
    public var firstBlockSeconds: Double?
    public init(_ reply: GenerationReply, firstBlockSeconds: Double? = nil) {
        self.reply = reply
        self.firstBlockSeconds = firstBlockSeconds
    }
}

/// Sends requests the way the plan says, each as a task of its own, and summarises the replies.
public enum LoadTest {
    public typealias Send = @Sendable (GenerationRequest) async throws -> LoadTestReply

    public static func run(
        plan: LoadTestPlan, prompts: [LoadTestPrompt], template: GenerationRequest, send: @escaping Send,
        progress: @escaping @Sendable (Int, Int) -> Void = { _, _ in }
    ) async -> LoadTestReport {
        precondition(!prompts.isEmpty && plan.requests > 0)
        let results = ResultsLog(total: plan.requests, progress: progress)
        let started = ContinuousClock.now
        let deadline = plan.duration.map { started + .milliseconds(Int(min($0, 86_400) * 1000)) }
        let expired: @Sendable () -> Bool = { deadline.map { ContinuousClock.now >= $0 } ?? false }
        let one: @Sendable (Int) async -> Void = { index in
            var request = template
            let prompt = prompts[index % prompts.count]
            request.prompt = prompt.prompt
            let t0 = ContinuousClock.now
            let outcome: Outcome
            do {
                let answer = try await send(request)
                let seconds = Self.seconds(ContinuousClock.now - t0)
                let correct = prompt.example.map { TaskSuite.isCorrect($0, output: answer.reply.text) }
                outcome = .ok(
                    index: index, seconds: seconds, reply: answer.reply, correct: correct, firstBlock: answer.firstBlockSeconds)
            } catch let refusal as CoordinatorRefusal {
                outcome = .failed(kind: refusal.kind)
            } catch let error as TransportError {
                outcome = .failed(kind: "\(error.kind)")
            } catch {
                outcome = .failed(kind: "transport")
            }
            results.add(outcome)
        }
        await withTaskGroup(of: Void.self) { group in
            switch plan.arrivals {
            case .concurrency(let clients):
                let next = Counter()
                for _ in 0..<max(1, clients) {
                    group.addTask {
                        while !expired(), let i = next.take(below: plan.requests) { await one(i) }
                    }
                }
            case .rate(let rate):
                var rng = SplitMix64(seed: plan.seed)
                var due = started
                for i in 0..<plan.requests {
                    let u = max(Double(rng.next() >> 11) / Double(1 << 53), 1e-12)
                    due += .nanoseconds(Int64(min(-log(u) / rate * 1e9, 1e15)))
                    try? await Task.sleep(until: due, clock: .continuous)
                    if expired() { break }
                    group.addTask { await one(i) }
                }
            }
        }
        var report = results.report(seconds: Self.seconds(ContinuousClock.now - started))
        switch plan.arrivals {
        case .concurrency(let c): report.concurrency = c
        case .rate(let r): report.rate = r
        }
        return report
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    /// Nearest-rank percentile (`p` in 0...100) of `values`; 0 for none.
    public static func percentile(_ values: [Double], _ p: Double) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))
        return sorted[min(max(rank, 1), sorted.count) - 1]
    }

    enum Outcome {
        case ok(index: Int, seconds: Double, reply: GenerationReply, correct: Bool?, firstBlock: Double?)
        case failed(kind: String)
    }

    /// Outcomes gathered from many tasks.
    final class ResultsLog: @unchecked Sendable {
        // @unchecked: every field is guarded by `lock`.
        private let lock = NSLock()
        private var outcomes: [Outcome] = []
        private let total: Int
        private let progress: @Sendable (Int, Int) -> Void
        init(total: Int, progress: @escaping @Sendable (Int, Int) -> Void) {
            self.total = total
            self.progress = progress
        }
        func add(_ outcome: Outcome) {
            let done = lock.withLock {
                outcomes.append(outcome)
                return outcomes.count
            }
            progress(done, total)
        }
        func report(seconds: Double) -> LoadTestReport {
            let outcomes = lock.withLock { self.outcomes }
            var r = LoadTestReport()
            r.requests = outcomes.count
            r.seconds = seconds
            var tokens = 0
            var nfe = 0
            var tpf = 0.0
            var checked = 0
            var correct = 0
            var firstBlocks: [Double] = []
            for outcome in outcomes {
                switch outcome {
                case .ok(let index, let s, let reply, let isCorrect, let firstBlock):
                    r.ok += 1
                    if r.answers.count <= index { r.answers += Array(repeating: nil, count: index + 1 - r.answers.count) }
                    r.answers[index] = reply.text
                    r.latencies.append(s)
                    if let firstBlock { firstBlocks.append(firstBlock) }
                    tokens += reply.useful_tokens
                    nfe += reply.nfe
                    tpf += reply.tpf
                    if let isCorrect {
                        checked += 1
                        if isCorrect { correct += 1 }
                    }
                case .failed(let kind):
                    r.failed += 1
                    r.failed_by_kind[kind, default: 0] += 1
                }
            }
            if r.answers.count < r.requests { r.answers += Array(repeating: nil, count: r.requests - r.answers.count) }
            r.requests_per_s = seconds > 0 ? Double(r.ok) / seconds : 0
            r.tokens_per_s = seconds > 0 ? Double(tokens) / seconds : 0
            r.latency_p50 = LoadTest.percentile(r.latencies, 50)
            r.latency_p90 = LoadTest.percentile(r.latencies, 90)
            r.latency_p99 = LoadTest.percentile(r.latencies, 99)
            if !firstBlocks.isEmpty {
                r.first_block_p50 = LoadTest.percentile(firstBlocks, 50)
                r.first_block_p90 = LoadTest.percentile(firstBlocks, 90)
                r.first_block_p99 = LoadTest.percentile(firstBlocks, 99)
            }
            r.mean_nfe = r.ok > 0 ? Double(nfe) / Double(r.ok) : 0
            r.mean_tpf = r.ok > 0 ? tpf / Double(r.ok) : 0
            r.accuracy = checked > 0 ? Double(correct) / Double(checked) : nil
            return r
        }
    }

    /// Hands out 0, 1, 2, ... to many threads.
    final class Counter: @unchecked Sendable {
        // @unchecked: `value` is guarded by `lock`.
        private let lock = NSLock()
        private var value = 0
        func take(below limit: Int) -> Int? {
            lock.withLock {
                guard value < limit else { return nil }
                defer { value += 1 }
                return value
            }
        }
    }
}
