import Foundation
import L2PDCluster
import L2PDCommandLine
import L2PDDecoding
import L2PDEngine
import L2PDFilter
import L2PDKernels
import L2PDModel
import L2PDTokenizer
import L2PDTransport

// OpenBLAS starts its own thread pool when the library loads. Every BLAS call here is
// single-threaded (stages parallelize themselves), and an idle pool of OpenBLAS threads makes
// each call wait on them: so the pool must never start. The variable has to be set before the
// library loads, hence one re-exec of this same program with it set. The same re-exec asks
// for the kernels the CPU can run where OpenBLAS picked weaker ones (`BLAS.preferredCoreType`).
var blasEnvironmentChanged = false
if getenv("OPENBLAS_NUM_THREADS") == nil {
    setenv("OPENBLAS_NUM_THREADS", "1", 1)
    blasEnvironmentChanged = true
}
if let core = BLAS.preferredCoreType(
    current: BLAS.coreName, cpuFlags: BLAS.cpuFlags(), userValue: getenv("OPENBLAS_CORETYPE").map { String(cString: $0) })
{
    setenv("OPENBLAS_CORETYPE", core, 1)
    blasEnvironmentChanged = true
}
if blasEnvironmentChanged {
    execv("/proc/self/exe", CommandLine.unsafeArgv)
    // execv only returns on failure: carry on as loaded (slower, still correct).
}

/// The release this build belongs to, printed by `l2pd --version`.
let l2pdVersion = "0.1.0"

/// Every command `l2pd` knows, in the order `l2pd --help` lists them.
let commands: [any Command.Type] = [
    GenerateCommand.self, ChatCommand.self, EvalCommand.self, FilterCollectCommand.self, FilterTrainCommand.self,
    FilterCalibrateCommand.self,
    ServeCommand.self, WorkerCommand.self, CoordinatorCommand.self, TasksExportCommand.self, TasksListCommand.self,
    BenchForwardCommand.self,
    BenchProductsCommand.self,
    BenchClusterCommand.self,
    QuantizeCommand.self,
    LoadtestCommand.self,
]

@MainActor func topLevelHelp() -> String {
    var lines = [
        "l2pd: learned parallel decoding for diffusion language models (LLaDA).", "",
        "Usage: l2pd <command> [options]   (l2pd <command> --help for its options; l2pd --version: version, CPU features, BLAS kernels)",
        "", "Commands:",
    ]
    let width = commands.map { $0.path.joined(separator: " ").count }.max()! + 2
    for command in commands {
        lines.append("  " + command.path.joined(separator: " ").padding(toLength: width, withPad: " ", startingAt: 0) + command.summary)
    }
    return lines.joined(separator: "\n")
}

/// Exit codes: 0 success, 1 user error (bad options, bad files, bad requests), 2 internal error.
@MainActor func main() async -> Int32 {
    let arguments = Array(CommandLine.arguments.dropFirst())
    if arguments.isEmpty || arguments == ["--help"] || arguments == ["help"] || arguments == ["-h"] {
        print(topLevelHelp())
        return arguments.isEmpty ? 1 : 0
    }
    if arguments == ["--version"] || arguments == ["version"] {
        print("l2pd \(l2pdVersion)")
        let report = BLAS.kernelReport(current: BLAS.coreName, cpuFlags: BLAS.cpuFlags())
        print(report.features)
        if let warning = report.warning { print(warning) }
        return 0
    }
    // The longest command path that prefixes the arguments selects the command.
    let match =
        commands
        .filter { arguments.starts(with: $0.path) }
        .max { $0.path.count < $1.path.count }
    guard let command = match else {
        printError("l2pd: unknown command '\(arguments.prefix(2).joined(separator: " "))'\n\n" + topLevelHelp())
        return 1
    }
    let rest = Array(arguments.dropFirst(command.path.count))
    if rest.contains("--help") || rest.contains("-h") {
        print(command.help)
        return 0
    }
    do {
        let options = try ParsedOptions.parse(rest, options: command.options)
        try await command.run(options)
        return 0
    } catch let error as UsageError {
        printError("l2pd \(command.path.joined(separator: " ")): \(error.description)\nUsage: \(command.usage) (see --help)")
        return 1
    } catch let error as CheckpointError {
        printError("l2pd: \(error.description)")
        return 1
    } catch let error as StageError {
        printError("l2pd: \(error.description)")
        return 1
    } catch let error as any ClassifiedError {
        // Request errors exit 1; a busy or unavailable cluster and internal faults exit 2.
        printError("l2pd: \(error.description)")
        return error.errorClass.exitCode
    } catch let error as FilterFileError {
        printError("l2pd: \(error.description)")
        return 1
    } catch let error as TransportError {
        printError("l2pd: \(error.description)")
        return 1
    } catch let error as TokenizerError {
        printError("l2pd: \(error.description)")
        return 1
    } catch {
        printError("l2pd: internal error: \(error)")
        return 2
    }
}

exit(await main())
