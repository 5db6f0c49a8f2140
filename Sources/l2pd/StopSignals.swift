import Foundation
import L2PDCommandLine

/// Exits cleanly on SIGINT and SIGTERM, with a last line on standard error. With `drain`, the
/// first signal runs it (a graceful shutdown) and then exits 0; a second signal exits at once.
enum StopSignals {
    nonisolated(unsafe) static var sources: [DispatchSourceSignal] = []
    private static let stopping = NSLock()
    nonisolated(unsafe) private static var signalled = false

    static func install(_ label: String, quiet: Bool = false, drain: (@Sendable () async -> Void)? = nil) {
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                let first = stopping.withLock { () -> Bool in
                    defer { signalled = true }
                    return !signalled
                }
                guard first, let drain else {
                    if !quiet { printError("\(label): stopping (signal \(sig))") }
                    exit(0)
                }
                if !quiet { printError("\(label): signal \(sig): draining (a second signal stops at once)") }
                Task {
                    await drain()
                    exit(0)
                }
            }
            source.resume()
            sources.append(source)
        }
    }
}
