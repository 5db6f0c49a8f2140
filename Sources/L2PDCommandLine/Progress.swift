import Foundation

/// Progress of long work on standard error, with the time left estimated from the pace so far.
/// On a terminal one line redraws itself (bar, count, elapsed, ETA); otherwise (a log file, CI)
/// a plain line is written at the first item and every tenth of the way, so logs stay readable.
public final class Progress: @unchecked Sendable {
    // @unchecked: mutable state is guarded by `lock`.
    public let label: String
    public let total: Int
    private let start = Date()
    private let terminal: Bool
    private let lock = NSLock()
    private var lastDecile = -1
    private var count = 0
    /// Recent (done, seconds) points: the estimate follows the recent pace, so work whose items
    /// change cost (an eval grid's slow baseline first, fast policies after) is not misjudged.
    private var recent: [(done: Int, elapsed: Double)] = []
    private var write: (String) -> Void

    public init(_ label: String, total: Int, terminal: Bool? = nil, write: @escaping (String) -> Void = Progress.standardError) {
        self.label = label
        self.total = max(0, total)
        self.terminal = terminal ?? (isatty(STDERR_FILENO) == 1)
        self.write = write
    }

    public static func standardError(_ text: String) { FileHandle.standardError.write(Data(text.utf8)) }

    /// Reports `done` of `total`; `extra` is shown after the estimate.
    public func update(_ done: Int, extra: String = "") {
        lock.withLock {
            let elapsed = Date().timeIntervalSince(start)
            recent.append((done, elapsed))
            let window = max(5, total / 20)
            if recent.count > window { recent.removeFirst(recent.count - window) }
            var pace: Double? = nil
            if let first = recent.first, done > first.done, elapsed > first.elapsed {
                pace = (elapsed - first.elapsed) / Double(done - first.done)
            }
            let text = Self.line(label: label, done: done, total: total, elapsed: elapsed, secondsPerItem: pace, extra: extra)
            if terminal {
                write("\r\u{1B}[K" + text + (done >= total ? "\n" : ""))
            } else {
                let decile = total > 0 ? 10 * min(done, total) / total : 10
                guard decile != lastDecile else { return }
                lastDecile = decile
                write(text + "\n")
            }
        }
    }

    /// Counts one more item done and reports it.
    public func advance(extra: String = "") {
        let done = lock.withLock { () -> Int in
            count += 1
            return count
        }
        update(done, extra: extra)
    }

    /// `label [bar] done/total  elapsed  ETA  extra`; the ETA assumes `secondsPerItem` (by
    /// default the pace so far) holds for the rest.
    public static func line(
        label: String, done: Int, total: Int, elapsed: Double, secondsPerItem: Double? = nil, extra: String = ""
    ) -> String {
        let width = 24
        let filled = total > 0 ? width * min(done, total) / total : width
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        var text = "\(label) [\(bar)] \(done)/\(total)  \(duration(elapsed))"
        if done > 0 && done < total {
            let pace = secondsPerItem ?? elapsed / Double(done)
            text += "  ETA \(duration(pace * Double(total - done)))"
        }
        return extra.isEmpty ? text : text + "  " + extra
    }

    /// `42 s`, `3 min 5 s`, `1 h 02 min`.
    public static func duration(_ seconds: Double) -> String {
        let s = Int(max(0, seconds).rounded())
        if s < 60 { return "\(s) s" }
        if s < 3600 { return "\(s / 60) min \(s % 60) s" }
        return String(format: "%d h %02d min", s / 3600, (s % 3600) / 60)
    }
}
