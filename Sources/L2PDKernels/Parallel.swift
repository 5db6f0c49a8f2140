import Dispatch

/// Fork-join over a fixed number of workers on GCD's threads (never Swift's cooperative
/// pool). With one worker the body runs inline.
public enum Parallel {
    /// Runs `body(0) ... body(workers - 1)` concurrently and returns when all have finished.
    /// The caller guarantees the workers touch disjoint memory (each owns its rows or heads);
    /// that is why the non-Sendable body may be shared across threads here.
    public static func run(_ workers: Int, _ body: (Int) -> Void) {
        if workers <= 1 {
            body(0)
            return
        }
        withoutActuallyEscaping(body) { escapable in
            let shared = UncheckedSendable(escapable)
            DispatchQueue.concurrentPerform(iterations: workers) { shared.value($0) }
        }
    }

    /// Splits `0..<count` into `parts` contiguous ranges of near-equal size (empty ones dropped).
    public static func chunks(_ count: Int, parts: Int) -> [Range<Int>] {
        let parts = max(1, min(parts, count))
        return (0..<parts).map { i in (count * i / parts)..<(count * (i + 1) / parts) }.filter { !$0.isEmpty }
    }
}

/// Carries a value across a fork-join boundary whose safety the caller guarantees.
private struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
