import Foundation
import L2PDDecoding
import Testing

@testable import L2PDCommandLine

/// The same boundary values the network doors are fuzzed with, through the command-line parser
/// and the shared validation: each is either a valid request or a clear error, never a crash.
@Suite struct CommandLineTests {
    static let values = [
        "0", "-1", "1", "1.5", "1e30", "-1e30", "1e39", "-1e39", "1e-50", "9223372036854775807", "9223372036854775808",
        "-9223372036854775808", "18446744073709551616", "NaN", "nan", "Infinity", "-inf", "true", "", "x", "0x10", " 7",
        String(repeating: "9", count: 1 << 16),
    ]

    @Test func everyDecodingFlagAtItsBoundariesIsAcceptedOrRefusedClearly() throws {
        var accepted = 0
        var refused = 0
        for spec in DecodingFlags.specs {
            let inputs: [[String]] = spec.value == nil ? [["--\(spec.name)"]] : Self.values.map { ["--\(spec.name)", $0] }
            for arguments in inputs {
                do {
                    let parsed = try ParsedOptions.parse(arguments, options: DecodingFlags.specs)
                    let parameters = try DecodingFlags.parameters(parsed)
                    let options = try parameters.options(maxSequenceLength: 2048, filter: nil)
                    // What passes is within every stated limit.
                    #expect(options.genLength >= 1 && options.genLength < 2048)
                    #expect(options.effectiveSteps >= 1 && options.effectiveSteps <= options.genLength)
                    #expect(options.temperature.isFinite && options.temperature >= 0)
                    accepted += 1
                } catch let error as UsageError {
                    #expect(error.description.contains("--\(spec.name)"), "\(arguments): \(error)")
                    #expect(error.description.count < 300, "error messages stay one sentence")
                    refused += 1
                } catch let error as GenerationError {
                    #expect(error.errorClass == .invalidRequest, "\(arguments)")
                    #expect(error.description.count < 300, "error messages stay one sentence")
                    refused += 1
                }
            }
        }
        #expect(accepted > 10)
        #expect(refused > 100)
    }

    @Test func theIssuesCrashInputsAreRefusedWithTheFieldNamed() throws {
        func refusal(_ arguments: [String]) throws -> String {
            let parsed = try ParsedOptions.parse(arguments, options: DecodingFlags.specs)
            do {
                _ = try DecodingFlags.parameters(parsed).options(maxSequenceLength: 2048, filter: nil)
                return "accepted"
            } catch {
                return "\(error)"
            }
        }
        #expect(try refusal(["--policy", "factor", "--factor", "-1e30"]).hasPrefix("factor must be"))
        #expect(try refusal(["--policy", "factor", "--factor", "-1e39"]).contains("--factor is out of range"))
        #expect(try refusal(["--steps", "1000000000000"]).hasPrefix("steps must be between 1 and 256"))
        #expect(try refusal(["--steps", "9223372036854774784", "--gen-length", "32"]).hasPrefix("steps must be"))
        #expect(try refusal(["--gen-length", "9223372036854775807", "--block-length", "1"]).hasPrefix("gen_length must be"))
        #expect(try refusal(["--tau", "1.5", "--policy", "learn2pd"]).hasPrefix("tau must be"))
        #expect(try refusal(["--eotp-gate", "2"]).hasPrefix("eotp_gate must be"))
        #expect(try refusal(["--policy", "frechet", "--delta", "-1.01"]).hasPrefix("delta must be in [-1, 1]"))
        #expect(try refusal(["--delta", "2"]).hasPrefix("delta must be"))
        #expect(try refusal(["--policy", "frechet+eotp", "--delta", "0.1"]) == "accepted")
        #expect(try refusal(["--policy", "nonsense+eotp"]).contains("unknown policy"))
        #expect(try refusal(["--cache", "sideways"]).hasPrefix("cache must be one of"))
        #expect(try refusal(["--gen-length", "64", "--block-length", "32", "--steps", "64"]) == "accepted")
    }

    @Test func absentFlagsStayAbsentSoTheLibraryDefaultsApply() throws {
        let parsed = try ParsedOptions.parse([], options: DecodingFlags.specs)
        #expect(try DecodingFlags.parameters(parsed) == DecodingParameters())
        let options = try DecodingParameters().options(maxSequenceLength: 2048, filter: nil)
        #expect(options.genLength == DecodingParameters.defaultGenLength)
        #expect(options.blockLength == DecodingParameters.defaultBlockLength)
        #expect(options.cache == DecodingParameters.defaultCache)
        // Without a filter a default that needs one falls back, keeping its end-of-text setting.
        let spec = try PolicySpec(parsing: DecodingParameters.defaultPolicy)
        let expected = spec.name == "learn2pd" ? DecodingParameters.fallbackPolicy : spec.name
        #expect(options.policy.name == expected)
        #expect(options.eotp == spec.eotp)
    }

    @Test func parserErrorsNameTheOption() {
        #expect(throws: UsageError.self) { try ParsedOptions.parse(["--nope"], options: DecodingFlags.specs) }
        #expect(throws: UsageError.self) { try ParsedOptions.parse(["--steps"], options: DecodingFlags.specs) }
        #expect(throws: UsageError.self) { try ParsedOptions.parse(["--eotp=1"], options: DecodingFlags.specs) }
    }
}

@Suite struct ProgressTests {
    @Test func linesShowCountElapsedAndTimeLeft() {
        #expect(Progress.line(label: "eval", done: 25, total: 100, elapsed: 30).hasSuffix("25/100  30 s  ETA 1 min 30 s"))
        #expect(!Progress.line(label: "eval", done: 100, total: 100, elapsed: 30).contains("ETA"))
        #expect(Progress.duration(3725) == "1 h 02 min")
    }

    @Test func withoutATerminalOnlyEveryTenthIsWritten() {
        let lines = Lines()
        let progress = Progress("work", total: 200, terminal: false) { lines.append($0) }
        for _ in 0..<200 { progress.advance() }
        #expect(lines.all.count == 11)  // the first item, then each tenth of the way
        #expect(lines.all.allSatisfy { $0.hasSuffix("\n") && !$0.contains("\u{1B}") })
        #expect(lines.all.last?.contains("200/200") == true)
    }

    @Test func onATerminalTheLineRedrawsAndEndsWithANewline() {
        let lines = Lines()
        let progress = Progress("work", total: 3, terminal: true) { lines.append($0) }
        for i in 1...3 { progress.update(i) }
        #expect(lines.all.count == 3)
        #expect(lines.all.allSatisfy { $0.hasPrefix("\r\u{1B}[K") })
        #expect(lines.all.last?.hasSuffix("\n") == true)
    }
}

final class Lines: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func append(_ line: String) { lock.withLock { lines.append(line) } }
    var all: [String] { lock.withLock { lines } }
}

@Test func theEstimateFollowsTheRecentPace() {
    // 10 of 100 done in 100 s, but the last items took 1 s each: 90 left at 1 s each.
    #expect(Progress.line(label: "eval", done: 10, total: 100, elapsed: 100, secondsPerItem: 1).hasSuffix("ETA 1 min 30 s"))
}
