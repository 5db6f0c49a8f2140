import Foundation
import L2PDModel
import Testing

@testable import L2PDFilter

/// Records where a position's label is 1 exactly when its confidence exceeds 0.7: learnable
/// by the filter, and not by a constant.
func syntheticDataset(count: Int, blockLength: Int, seed: UInt64) -> FilterDataset {
    var data = FilterDataset(blockLength: blockLength, features: .confidence)
    var random = SplitMix(seed: seed)
    for _ in 0..<count {
        let input = (0..<blockLength).map { _ in random.uniform(0, 1) }
        data.append(input: input, labels: input.map { $0 > 0.7 ? 1 : 0 }, masked: input.map { _ in 1 })
    }
    return data
}

@Test(arguments: [nil, 3, 11] as [Int?])
func gradientsMatchFiniteDifferences(hidden: Int?) {
    let b = 6
    var net = FilterNetwork(blockLength: b, hiddenWidth: hidden, seed: 3)
    let data = syntheticDataset(count: 20, blockLength: b, seed: 4)
    let (_, grads) = FilterTrainer.lossAndGradients(net, data)
    let h: Float = 1e-2
    func numeric(_ path: WritableKeyPath<FilterNetwork, [Float]>, _ i: Int) -> Double {
        let original = net[keyPath: path][i]
        net[keyPath: path][i] = original + h
        let plus = FilterTrainer.lossAndGradients(net, data).loss
        net[keyPath: path][i] = original - h
        let minus = FilterTrainer.lossAndGradients(net, data).loss
        net[keyPath: path][i] = original
        return (plus - minus) / Double(2 * h)
    }
    for (path, name) in [(\FilterNetwork.w1, "w1"), (\.b1, "b1"), (\.w2, "w2"), (\.b2, "b2")] {
        for i in stride(from: 0, to: net[keyPath: path].count, by: 5) {
            let analytic = Double(grads[keyPath: path][i])
            let estimate = numeric(path, i)
            #expect(abs(analytic - estimate) < 2e-3 * max(1, abs(estimate)), "\(name)[\(i)]: \(analytic) vs \(estimate)")
        }
    }
}

@Test func trainingLearnsAThresholdRuleWithHighPrecision() {
    let data = syntheticDataset(count: 2000, blockLength: 8, seed: 1)
    let (train, validation, test) = data.split(seed: 2)
    #expect(train.count == 1600 && validation.count == 200 && test.count == 200)
    let start = FilterNetwork(blockLength: 8, tau: 0.9, seed: 5)
    let before = FilterTrainer.evaluate(start, test, tau: 0.9)
    var trainer = FilterTrainer()
    trainer.learningRate = 0.03  // a sharp step at 0.7 needs large weights; the default rate is for real records
    let trained = trainer.train(start, train: train, validation: validation, epochs: 1500)
    let after = FilterTrainer.evaluate(trained, test, tau: 0.9)
    #expect(after.loss < before.loss / 2)
    #expect(after.precision > 0.97)
    #expect(after.recall > 0.5)
    let calibrated = FilterTrainer.calibrate(trained, validation, targetPrecision: 0.99)
    #expect(calibrated != nil && calibrated!.metrics.precision >= 0.99)
}

@Test func filterAndRecordsSurviveAFileRoundTrip() throws {
    let directory = FileManager.default.temporaryDirectory
    for features in FilterFeatures.allCases {
        let net = FilterNetwork(blockLength: 4, features: features, tau: 0.93, seed: 8)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("filter-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try net.save(to: url)
        #expect(try FilterNetwork(contentsOf: url) == net)
        #expect(net.inputWidth == features.width(blockLength: 4))
    }
    let net = FilterNetwork(blockLength: 4, features: .confidenceMargin, tau: 0.93, seed: 8)
    let url = directory.appendingPathComponent("filter-\(UUID().uuidString).safetensors")
    defer { try? FileManager.default.removeItem(at: url) }
    try net.save(to: url)
    #expect(try FilterNetwork(contentsOf: url) == net)

    let data = syntheticDataset(count: 7, blockLength: 4, seed: 9)
    let recordsURL = directory.appendingPathComponent("records-\(UUID().uuidString).safetensors")
    defer { try? FileManager.default.removeItem(at: recordsURL) }
    try data.save(to: recordsURL)
    #expect(try FilterDataset(contentsOf: recordsURL) == data)
    #expect(throws: (any Error).self) { try FilterNetwork(contentsOf: recordsURL) }
}

/// The Learn2PD authors' filter format, converted by scripts/convert_authors_filter.py from a
/// random state dict: our network gives PyTorch's logits (scripts/make_filter_fixtures.py).
@Test func theAuthorsFilterConvertedGivesPyTorchsLogits() throws {
    struct Reference: Decodable {
        let inputs: [[Double]]
        let logits: [[Double]]
        let tau: Float
    }
    let fixtures = try #require(Bundle.module.resourceURL).appendingPathComponent("Fixtures")
    let reference = try JSONDecoder().decode(
        Reference.self, from: Data(contentsOf: fixtures.appendingPathComponent("authors-filter-logits.json")))
    let net = try FilterNetwork(contentsOf: fixtures.appendingPathComponent("authors-filter.safetensors"))
    #expect(net.blockLength == 32 && net.features == .confidence && net.tau == reference.tau)
    for (input, expected) in zip(reference.inputs, reference.logits) {
        let logits = net.logits(input.map(Float.init))
        for (got, want) in zip(logits, expected) { #expect(abs(Double(got) - want) < 1e-4, "\(got) against \(want)") }
    }
}

/// A filter file is an entrance: every bad field value is refused with the facts, never a crash
/// or a huge allocation.
@Test func badFilterFilesAreRefusedWithTheFieldNamed() throws {
    let good = FilterNetwork(blockLength: 4, features: .history, hiddenWidth: 8, tau: 0.9, seed: 1)
    func write(metadata change: [String: String], fc1Rows: Int = 8) throws -> URL {
        var metadata = ["block_length": "4", "tau": "0.9", "features": "history", "format": "learn2pd-filter"]
        metadata.merge(change) { $1 }
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("bad-filter-\(UUID().uuidString).safetensors")
        let w = good.inputWidth
        try SafetensorsWriter.write(
            [
                .init(name: "fc1.weight", shape: [fc1Rows, w], values: [Float](repeating: 0.1, count: fc1Rows * w)),
                .init(name: "fc1.bias", shape: [8], values: good.b1), .init(name: "fc2.weight", shape: [4, 8], values: good.w2),
                .init(name: "fc2.bias", shape: [4], values: good.b2),
            ], metadata: metadata, to: url)
        return url
    }
    let loaded = try FilterNetwork(contentsOf: try write(metadata: [:]))
    #expect(loaded.hiddenWidth == 8 && loaded.features == .history && loaded.tau == 0.9)
    let cases: [([String: String], Int, String)] = [
        (["block_length": "0"], 8, "block_length"), (["block_length": "-1"], 8, "block_length"),
        (["block_length": "1000000000000"], 8, "block_length"), (["block_length": "x"], 8, "block_length"),
        (["block_length": "5"], 8, "fc1.weight"), (["tau": "NaN"], 8, "tau"), (["tau": "5"], 8, "tau"), (["tau": "1"], 8, "tau"),
        (["tau": "-0"], 8, "tau"), (["features": "bogus"], 8, "features"), ([:], 2000, "hidden width"), ([:], 7, "fc1.bias"),
    ]
    for (metadata, rows, field) in cases {
        let url = try write(metadata: metadata, fc1Rows: rows)
        defer { try? FileManager.default.removeItem(at: url) }
        do {
            _ = try FilterNetwork(contentsOf: url)
            Issue.record("accepted \(metadata) with \(rows) hidden rows")
        } catch {
            #expect("\(error)".contains(field), "\(metadata), \(rows) rows: \(error)")
        }
    }
}
