import Foundation
import L2PDDecoding
import L2PDEngine

/// The commit stream of one streaming request, updated from the decoder's steps.
final class CommitStreamBox: @unchecked Sendable {
    // @unchecked: `stream` is guarded by `lock`.
    private let lock = NSLock()
    private var stream: CommitStream
    private var sent = ""
    init(_ stream: CommitStream) { self.stream = stream }

    func update(_ event: StepEvent) -> String? {
        lock.withLock {
            let delta = stream.update(event)
            if let delta { sent += delta }
            return delta
        }
    }

    /// What the final text holds beyond what was streamed (nil if it does not extend it).
    func remainder(of text: String) -> String? {
        lock.withLock {
            guard text.hasPrefix(sent) else { return nil }
            let rest = String(text.dropFirst(sent.count))
            sent = text
            return rest
        }
    }
}
