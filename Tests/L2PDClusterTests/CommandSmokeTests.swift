import Foundation
import Testing

@testable import L2PDCluster

/// Runs the built `l2pd` executable: every decoding command works with its flags left at their
/// defaults (small sizes only), and a bad flag value is an error exit, never a signal.
@Suite(.serialized) struct CommandSmokeTests {
    /// Runs `l2pd ARGUMENTS` with `input` on standard input; returns the exit status (nil when it
    /// died by a signal), standard output and standard error.
    func run(_ arguments: [String], input: String = "") throws -> (status: Int32?, stderr: String, stdout: String) {
        let process = Process()
        process.executableURL = try WorkerProcesses.executable
        process.arguments = arguments
        let errors = Pipe()
        let output = Pipe()
        let stdin = Pipe()
        process.standardError = errors
        process.standardOutput = output
        process.standardInput = stdin
        try process.run()
        stdin.fileHandleForWriting.write(Data(input.utf8))
        try stdin.fileHandleForWriting.close()
        // Read both pipes to the end off this thread so neither fills up and blocks the child.
        let out = ResultHolder()
        let reader = Thread { out.value = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) }
        reader.start()
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        while !out.done { Thread.sleep(forTimeInterval: 0.01) }
        return (process.terminationReason == .exit ? process.terminationStatus : nil, text, out.value)
    }

    /// `l2pd chat` under a scripted standard input: two turns answered, the second sent with
    /// the first in its history; `/reset` starts over.
    @Test func chatKeepsTheConversationAcrossTurns() async throws {
        let script = "Copy the digits 8675309.\nWhat is 12 + 30?\n/reset\nWhat is 12 + 30?\n/quit\n"
        let (status, stderr, stdout) = try await offPool {
            try run(["chat", "--policy", "threshold", "--gen-length", "64", "--stats"], input: script)
        }
        #expect(status == 0, "\(stderr)")
        let answers = stdout.split(separator: "\n")
        #expect(answers.count == 3, "\(stdout)")
        #expect(answers.first == "8675309")
        let promptTokens = stderr.split(separator: "\n").compactMap { line -> Int? in
            guard let range = line.range(of: "prompt ") else { return nil }
            return Int(line[range.upperBound...].prefix { $0.isNumber })
        }
        #expect(promptTokens.count == 3, "\(stderr)")
        if promptTokens.count == 3 {
            #expect(promptTokens[1] > promptTokens[0] + 10, "turn 2 carries turn 1")
            #expect(promptTokens[2] < promptTokens[1], "after /reset the history is gone")
        }
    }

    @Test func everyDecodingCommandRunsWithDefaults() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("l2pd-smoke-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let records = directory.appendingPathComponent("records.safetensors").path
        let filter = directory.appendingPathComponent("filter.safetensors").path
        let commands: [[String]] = [
            ["generate", "--gen-length", "32", "What is 1 + 2?"],
            ["generate", "--gen-length", "32", "--policy", "learn2pd+eotp", "--cache", "dual", "What is 1 + 2?"],
            ["eval", "--limit", "2", "--policies", "threshold", "--gen-length", "32"],
            ["tasks", "export", "--count", "2"], ["tasks", "list", "--measure", "1", "--gen-length", "32"],
            ["filter", "collect", "--count", "12", "--gen-length", "64", "--out", records],
            ["filter", "train", "--records", records, "--out", filter, "--epochs", "5"],
            ["filter", "calibrate", "--records", records, "--filter", filter],
        ]
        for arguments in commands {
            let (status, stderr, _) = try await offPool { try run(arguments) }
            #expect(status == 0, "l2pd \(arguments.joined(separator: " ")): \(stderr.suffix(600))")
        }
        let service = try await LiveService()
        defer { service.stop() }
        let load = ["loadtest", "--target", service.nngURL, "--requests", "4", "--concurrency", "2", "--gen-length", "32"]
        let (status, stderr, _) = try await offPool { try run(load) }
        #expect(status == 0, "l2pd loadtest: \(stderr.suffix(600))")
    }

    @Test func badFlagValuesExitWithAMessage() async throws {
        let cases: [[String]] = [
            ["generate", "--steps", "1000000000000", "hi"], ["generate", "--factor", "-1e39", "--policy", "factor", "hi"],
            ["generate", "--gen-length", "9223372036854775807", "--block-length", "1", "hi"], ["generate", "--seed", "-1", "hi"],
            ["generate", "--temperature", "nan", "hi"], ["generate", "--policy", "nope", "hi"], ["generate", "--cache", "x", "hi"],
            ["eval", "--policies", "bogus", "--limit", "1"], ["eval", "--block-length", "0", "--limit", "1"],
            ["generate", "--weights", "bf16", "hi"], ["generate", "--weights", "", "hi"], ["serve", "--weights", "-1"],
            ["worker", "--weights", "F32"], ["bench", "forward", "--weights", "nan", "--layers", "1"],
        ]
        for arguments in cases {
            let (status, stderr, _) = try await offPool { try run(arguments) }
            #expect(status == 1, "l2pd \(arguments.joined(separator: " ")): \(stderr.suffix(300))")
            #expect(stderr.hasPrefix("l2pd"), "\(stderr.prefix(200))")
        }
    }
}

final class ResultHolder: @unchecked Sendable {
    // @unchecked: written once by the reader thread before `done` is set, read after.
    private let lock = NSLock()
    private var text = ""
    private var finished = false
    var value: String {
        get { lock.withLock { text } }
        set {
            lock.withLock {
                text = newValue
                finished = true
            }
        }
    }
    var done: Bool { lock.withLock { finished } }
}
