import Foundation
import L2PDModel

/// A filter or record file that cannot be used, with the facts.
public enum FilterFileError: Error, CustomStringConvertible {
    case invalid(path: String, reason: String)

    public var description: String {
        switch self {
        case .invalid(let path, let reason): return "\(path): \(reason)"
        }
    }
}

extension FilterNetwork {
    /// Saves as safetensors (`fc1.weight`, `fc1.bias`, `fc2.weight`, `fc2.bias`) with the
    /// block length, default tau and input features in the metadata.
    public func save(to url: URL) throws {
        let b = blockLength
        let h = hiddenWidth
        try SafetensorsWriter.write(
            [
                .init(name: "fc1.weight", shape: [h, inputWidth], values: w1), .init(name: "fc1.bias", shape: [h], values: b1),
                .init(name: "fc2.weight", shape: [b, h], values: w2), .init(name: "fc2.bias", shape: [b], values: b2),
            ],
            metadata: ["block_length": "\(b)", "tau": "\(tau)", "features": features.rawValue, "format": "learn2pd-filter"], to: url)
    }

    public init(contentsOf url: URL) throws {
        let file = try SafetensorsFile(path: url.path)
        let path = url.path
        guard let blockText = file.metadata["block_length"], let b = Int(blockText), b > 0, b <= FilterNetwork.maxBlockLength else {
            throw FilterFileError.invalid(
                path: path, reason: "metadata has no valid block_length (an integer from 1 to \(FilterNetwork.maxBlockLength))")
        }
        let tau = Float(file.metadata["tau"] ?? "0.96")
        guard let tau, tau.isFinite, tau > 0, tau < 1 else {
            throw FilterFileError.invalid(path: path, reason: "metadata tau '\(file.metadata["tau"]!.prefix(32))' is not in (0, 1)")
        }
        let features = FilterFeatures(rawValue: file.metadata["features"] ?? "confidence")
        guard let features else {
            throw FilterFileError.invalid(path: path, reason: "unknown filter features '\(file.metadata["features"]!)'")
        }
        // The hidden width is the first layer's output count (the block length in the paper's filter).
        let h = file.tensors["fc1.weight"]?.shape.first ?? b
        guard h > 0, h <= FilterNetwork.maxHiddenWidth else {
            throw FilterFileError.invalid(path: path, reason: "hidden width \(h) is outside 1...\(FilterNetwork.maxHiddenWidth)")
        }
        self.init(blockLength: b, features: features, hiddenWidth: h, tau: tau)
        func read(_ name: String, _ shape: [Int]) throws -> [Float] {
            guard let info = file.tensors[name] else { throw CheckpointError.missingTensor(path: path, tensor: name) }
            guard info.shape == shape else {
                throw CheckpointError.wrongShape(path: path, tensor: name, expected: shape, found: info.shape)
            }
            var values = [Float](repeating: 0, count: info.elementCount)
            try values.withUnsafeMutableBufferPointer { try file.read(name, into: $0.baseAddress!) }
            return values
        }
        w1 = try read("fc1.weight", [h, inputWidth])
        b1 = try read("fc1.bias", [h])
        w2 = try read("fc2.weight", [b, h])
        b2 = try read("fc2.bias", [b])
    }
}

extension FilterDataset {
    public func save(to url: URL) throws {
        try SafetensorsWriter.write(
            [
                .init(name: "inputs", shape: [count, inputWidth], values: inputs),
                .init(name: "labels", shape: [count, blockLength], values: labels),
                .init(name: "masked", shape: [count, blockLength], values: masked),
            ], metadata: ["block_length": "\(blockLength)", "features": features.rawValue, "format": "learn2pd-filter-records"], to: url)
    }

    public init(contentsOf url: URL) throws {
        let file = try SafetensorsFile(path: url.path)
        guard let b = file.metadata["block_length"].flatMap(Int.init), b > 0,
            let features = FilterFeatures(rawValue: file.metadata["features"] ?? "confidence"),
            let labelsInfo = file.tensors["labels"], labelsInfo.shape.count == 2, labelsInfo.shape[1] == b
        else {
            throw FilterFileError.invalid(path: url.path, reason: "not a filter record file (missing block_length, features or labels)")
        }
        self.init(blockLength: b, features: features)
        let n = labelsInfo.shape[0]
        func read(_ name: String, _ shape: [Int]) throws -> [Float] {
            guard let info = file.tensors[name] else { throw CheckpointError.missingTensor(path: url.path, tensor: name) }
            guard info.shape == shape else {
                throw CheckpointError.wrongShape(path: url.path, tensor: name, expected: shape, found: info.shape)
            }
            var values = [Float](repeating: 0, count: info.elementCount)
            try values.withUnsafeMutableBufferPointer { try file.read(name, into: $0.baseAddress!) }
            return values
        }
        inputs = try read("inputs", [n, inputWidth])
        labels = try read("labels", [n, b])
        masked = try read("masked", [n, b])
    }
}
