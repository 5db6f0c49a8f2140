import Foundation
import Testing

@testable import L2PDCluster

/// Runs the built `l2pd` executable: every decoding command works with its flags left at their
/// defaults (small sizes only), and a bad flag value is an error exit, never a signal.
@Suite(.serialized) struct CommandSmokeTests {
    /// Runs `l2pd ARGUMENTS`; returns the exit status (nil when it died by a signal) and stderr.
    func run(_ arguments: [String]) throws -> (status: Int32?, stderr: String) {
        let process = Process()
        process.executableURL = try WorkerProcesses.executable
        process.arguments = arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationReason == .exit ? process.terminationStatus : nil, text)
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
            ["tasks", "export", "--count", "2"],
            ["filter", "collect", "--count", "12", "--gen-length", "64", "--out", records],
            ["filter", "train", "--records", records, "--out", filter, "--epochs", "5"],
            ["filter", "calibrate", "--records", records, "--filter", filter],
        ]
        for arguments in commands {
            let (status, stderr) = try await offPool { try run(arguments) }
            #expect(status == 0, "l2pd \(arguments.joined(separator: " ")): \(stderr.suffix(600))")
        }
        let service = try await LiveService()
        defer { service.stop() }
        let load = ["loadtest", "--target", service.nngURL, "--requests", "4", "--concurrency", "2", "--gen-length", "32"]
        let (status, stderr) = try await offPool { try run(load) }
        #expect(status == 0, "l2pd loadtest: \(stderr.suffix(600))")
    }

    @Test func badFlagValuesExitWithAMessage() async throws {
        let cases: [[String]] = [
            ["generate", "--steps", "1000000000000", "hi"], ["generate", "--factor", "-1e39", "--policy", "factor", "hi"],
            ["generate", "--gen-length", "9223372036854775807", "--block-length", "1", "hi"], ["generate", "--seed", "-1", "hi"],
            ["generate", "--temperature", "nan", "hi"], ["generate", "--policy", "nope", "hi"], ["generate", "--cache", "x", "hi"],
            ["eval", "--policies", "bogus", "--limit", "1"], ["eval", "--block-length", "0", "--limit", "1"],
        ]
        for arguments in cases {
            let (status, stderr) = try await offPool { try run(arguments) }
            #expect(status == 1, "l2pd \(arguments.joined(separator: " ")): \(stderr.suffix(300))")
            #expect(stderr.hasPrefix("l2pd"), "\(stderr.prefix(200))")
        }
    }
}
