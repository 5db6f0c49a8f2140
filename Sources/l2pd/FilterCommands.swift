import Foundation
import L2PDCommandLine
import L2PDDecoding
import L2PDEngine
import L2PDEvaluation
import L2PDFilter
import L2PDTasks

/// `l2pd filter collect`: baseline answers, then EGP replays that record the filter's training data.
struct FilterCollectCommand: Command {
    static let path = ["filter", "collect"]
    static let summary = "Record Learn2PD training data (block confidences, match labels) on training prompts."
    static let options: [OptionSpec] =
        [
            .option("count", "N", "Training-split prompts to run.", default: "100"),
            .option("task", "LIST", "Task families (default: all).", default: nil),
            .option("task-seed", "N", "Seed of the training prompts.", default: "11"),
            .option(
                "features", "NAME", "Filter input: \(FilterFeatures.allCases.map(\.rawValue).joined(separator: ", ")) (see the README).",
                default: "confidence"),
            .option("out", "FILE", "Output records (safetensors).", default: "filter-records.safetensors"),
        ]
        + DecodingOptions.specs.filter { ["model", "gen-length", "block-length", "steps", "threads"].contains($0.name) }

    static func run(_ o: ParsedOptions) async throws {
        guard let features = FilterFeatures(rawValue: o.string("features")!) else {
            throw UsageError("--features must be one of \(FilterFeatures.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let examples = TaskSuite.examples(
            split: .train, count: try o.positiveInt("count")!, seed: UInt64(try o.int("task-seed")!),
            families: try TaskOptions.families(o))
        var options = GenerationOptions()
        options.genLength = try o.positiveInt("gen-length") ?? DecodingParameters.defaultGenLength
        options.blockLength = try o.positiveInt("block-length") ?? DecodingParameters.defaultBlockLength
        options.steps = try o.positiveInt("steps")
        let generator = try DecodingOptions.generator(o)
        let start = Date()
        let progress = Progress("filter collect", total: examples.count)
        let data = try await FilterCollection.collect(
            examples: examples, generator: generator, options: options, features: features
        ) { done, _ in progress.update(done) }
        let out = URL(fileURLWithPath: o.string("out")!)
        try data.save(to: out)
        let positives = data.labels.reduce(0, +)
        printError(
            String(
                format: "filter collect: %d steps (%.1f%% of labels positive) from %d prompts in %.0f s -> %@", data.count,
                100 * Double(positives) / Double(max(data.labels.count, 1)), examples.count, Date().timeIntervalSince(start), out.path))
    }
}

/// `l2pd filter train`: the 2-layer MLP on recorded data, full-batch AdamW.
struct FilterTrainCommand: Command {
    static let path = ["filter", "train"]
    static let summary = "Train the Learn2PD filter on recorded data; report loss, precision and recall."
    static let options: [OptionSpec] = [
        .option("records", "FILE", "Records from `l2pd filter collect`.", default: "filter-records.safetensors"),
        .option("out", "FILE", "Output filter (safetensors).", default: "filter.safetensors"),
        .option("epochs", "N", "Full-batch AdamW steps.", default: "3000"),
        .option("lr", "RATE", "Learning rate.", default: "0.003"),
        .option("tau", "P", "Acceptance threshold stored in the filter and used for the report.", default: "0.96"),
        .option("seed", "N", "Seed of the initial weights and the 80/10/10 split.", default: "1"),
        .option("hidden", "N", "Hidden units of the MLP (the paper's filter: the block length).", default: nil),
    ]

    static func run(_ o: ParsedOptions) async throws {
        let data = try FilterRecords.load(o.string("records")!)
        guard let tau = try o.double("tau"), tau > 0, tau < 1 else { throw UsageError("--tau must be in (0, 1)") }
        let seed = UInt64(try o.int("seed")!)
        let (train, validation, test) = data.split(seed: seed)
        var trainer = FilterTrainer()
        trainer.learningRate = Float(try o.double("lr")!)
        let epochs = try o.positiveInt("epochs")!
        let hidden = try o.positiveInt("hidden") ?? data.blockLength
        guard hidden <= FilterNetwork.maxHiddenWidth else { throw UsageError("--hidden must be at most \(FilterNetwork.maxHiddenWidth)") }
        let start = FilterNetwork(
            blockLength: data.blockLength, features: data.features, hiddenWidth: hidden, tau: Float(tau), seed: seed)
        printError(
            "filter train: \(train.count) train, \(validation.count) validation, \(test.count) test records; "
                + "\(data.features.rawValue) input (\(start.inputWidth)), \(hidden) hidden, \(start.parameterCount) parameters")
        let began = Date()
        let progress = Progress("filter train", total: epochs)
        let net = trainer.train(start, train: train, validation: validation, epochs: epochs, reportEvery: max(1, epochs / 50)) {
            epoch, trainLoss, validationLoss in
            progress.update(epoch, extra: String(format: "train loss %.4f  validation loss %.4f", trainLoss, validationLoss))
        }
        let metrics = FilterTrainer.evaluate(net, test, tau: Float(tau))
        print(
            String(
                format: "test: loss %.4f  precision %.4f  recall %.4f at tau %.2f (%d accepted)", metrics.loss, metrics.precision,
                metrics.recall, tau, metrics.accepted))
        try net.save(to: URL(fileURLWithPath: o.string("out")!))
        printError(String(format: "filter train: %.1f s, wrote %@", Date().timeIntervalSince(began), o.string("out")!))
    }
}

/// `l2pd filter calibrate`: choose tau on the validation split for a target precision.
struct FilterCalibrateCommand: Command {
    static let path = ["filter", "calibrate"]
    static let summary = "Pick the filter's tau on the validation split for a target precision."
    static let options: [OptionSpec] = [
        .option("filter", "FILE", "Trained filter.", default: "filter.safetensors"),
        .option("records", "FILE", "Records the filter was trained on.", default: "filter-records.safetensors"),
        .option("precision", "P", "Target precision of accepted positions on the validation split.", default: "0.99"),
        .option("seed", "N", "Seed of the 80/10/10 split (as in filter train).", default: "1"),
        .option("out", "FILE", "Write the filter with the chosen tau here (default: report only)."),
    ]

    static func run(_ o: ParsedOptions) async throws {
        let path = o.string("filter")!
        guard FileManager.default.fileExists(atPath: path) else { throw UsageError("filter file not found: \(path)") }
        var net = try FilterNetwork(contentsOf: URL(fileURLWithPath: path))
        let data = try FilterRecords.load(o.string("records")!)
        guard data.blockLength == net.blockLength, data.features == net.features else {
            throw UsageError("the records (block \(data.blockLength), \(data.features.rawValue)) do not match the filter")
        }
        guard let target = try o.double("precision"), target > 0, target <= 1 else { throw UsageError("--precision must be in (0, 1]") }
        let (_, validation, test) = data.split(seed: UInt64(try o.int("seed")!))
        guard let (tau, metrics) = FilterTrainer.calibrate(net, validation, targetPrecision: target) else {
            throw UsageError("no tau in [0.5, 0.999] reaches precision \(target) on the validation split")
        }
        let onTest = FilterTrainer.evaluate(net, test, tau: tau)
        print(
            String(
                format: "tau %.3f: validation precision %.4f recall %.4f; test precision %.4f recall %.4f", tau, metrics.precision,
                metrics.recall, onTest.precision, onTest.recall))
        if let out = o.string("out") {
            net.tau = tau
            try net.save(to: URL(fileURLWithPath: out))
            printError("filter calibrate: wrote \(out)")
        }
    }
}

enum FilterRecords {
    static func load(_ path: String) throws -> FilterDataset {
        guard FileManager.default.fileExists(atPath: path) else {
            throw UsageError("records file not found: \(path) (make one with `l2pd filter collect`)")
        }
        let data = try FilterDataset(contentsOf: URL(fileURLWithPath: path))
        guard data.count >= 10 else { throw UsageError("\(path) holds only \(data.count) records; collect more") }
        return data
    }
}

enum TaskOptions {
    static func families(_ o: ParsedOptions) throws -> [TaskFamily] {
        let families = try o.list("task").map {
            guard let family = TaskFamily(rawValue: $0) else {
                throw UsageError("unknown task '\($0)' (known: \(TaskFamily.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            return family
        }
        return families.isEmpty ? TaskFamily.allCases : families
    }
}
