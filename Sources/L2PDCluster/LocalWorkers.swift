import Foundation

/// `l2pd worker` processes on loopback, started from an `l2pd` executable (by default the one
/// running), for `bench cluster` and the tests. Ports are drawn at random below the kernel's
/// ephemeral range; a worker that exits at once (its port was taken) makes the whole group
/// start again on other ports.
public final class LocalWorkers: @unchecked Sendable {
    // @unchecked: `processes` is changed only by `kill`, `restart` and `stop`, which callers
    // do not run concurrently.
    public let urls: [String]
    public let executable: URL
    private let arguments: [String]
    private var processes: [Process] = []

    /// The executable of this process.
    public static var thisExecutable: URL { URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath() }

    /// Starts `count` workers with `arguments` added to each (`--model`, `--threads`, ...),
    /// listening on `scheme://127.0.0.1:PORT` (`tls+tcp` needs `--tls-cert` and `--tls-key`).
    public init(count: Int, executable: URL = LocalWorkers.thisExecutable, arguments: [String] = [], scheme: String = "tcp") throws {
        self.executable = executable
        self.arguments = arguments
        var attempt = 0
        while true {
            let base = 20_000 + Int.random(in: 0..<12_000)
            let candidates = (0..<count).map { "\(scheme)://127.0.0.1:\(base + $0)" }
            var started: [Process] = []
            for url in candidates { started.append(try Self.start(executable, url: url, arguments: arguments)) }
            Thread.sleep(forTimeInterval: 0.5)  // a worker that cannot listen exits within this
            if started.allSatisfy(\.isRunning) || attempt == 9 {
                urls = candidates
                processes = started
                return
            }
            for p in started where p.isRunning { p.terminate() }
            for p in started { p.waitUntilExit() }
            attempt += 1
        }
    }

    private static func start(_ executable: URL, url: String, arguments: [String]) throws -> Process {
        let p = Process()
        p.executableURL = executable
        p.arguments = ["worker", "--listen", url, "--quiet"] + arguments
        try p.run()
        return p
    }

    /// Worker `i`'s process (for signals).
    public func process(_ i: Int) -> Process { processes[i] }

    /// Stops worker `i` (SIGTERM) and waits for it.
    public func kill(_ i: Int) {
        processes[i].terminate()
        processes[i].waitUntilExit()
    }

    /// Starts worker `i` again on its address.
    public func restart(_ i: Int) throws {
        processes[i] = try Self.start(executable, url: urls[i], arguments: arguments)
    }

    public func stop() {
        for p in processes where p.isRunning { p.terminate() }
        for p in processes { p.waitUntilExit() }
    }

    deinit { stop() }
}
