import Foundation
import L2PDKernels

/// A LLaDA checkpoint directory in the Hugging Face layout: `config.json` plus either
/// `model.safetensors` or shards listed in `model.safetensors.index.json`. Opening maps the
/// files and validates headers; weights are converted to `Float` only when a stage asks.
public final class Checkpoint: @unchecked Sendable {
    // @unchecked: every stored property is immutable after `init`.
    public let directory: URL
    public let config: ModelConfig
    private let files: [String: SafetensorsFile]
    private let fileOfTensor: [String: String]

    public static let indexFileName = "model.safetensors.index.json"
    public static let singleFileName = "model.safetensors"

    public init(directory: URL) throws {
        self.directory = directory
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CheckpointError.missingFile(path: directory.path)
        }
        config = try ModelConfig.load(from: directory.appendingPathComponent("config.json"))

        let indexURL = directory.appendingPathComponent(Checkpoint.indexFileName)
        var fileNames: [String]
        var explicitMap: [String: String]? = nil
        if FileManager.default.fileExists(atPath: indexURL.path) {
            let map = try Checkpoint.readIndex(indexURL)
            explicitMap = map
            fileNames = Array(Set(map.values)).sorted()
        } else {
            fileNames = [Checkpoint.singleFileName]
        }
        var files: [String: SafetensorsFile] = [:]
        for name in fileNames {
            files[name] = try SafetensorsFile(path: directory.appendingPathComponent(name).path)
        }
        var fileOfTensor: [String: String] = [:]
        if let map = explicitMap {
            for (tensor, file) in map {
                guard files[file]!.tensors[tensor] != nil else {
                    throw CheckpointError.missingTensor(path: directory.appendingPathComponent(file).path, tensor: tensor)
                }
                fileOfTensor[tensor] = file
            }
        } else {
            for (name, file) in files { for tensor in file.tensors.keys { fileOfTensor[tensor] = name } }
        }
        self.files = files
        self.fileOfTensor = fileOfTensor
    }

    private static func readIndex(_ url: URL) throws -> [String: String] {
        guard let data = try? Data(contentsOf: url) else {
            throw CheckpointError.unreadableFile(path: url.path, reason: "cannot read")
        }
        guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw CheckpointError.invalidJSON(path: url.path, reason: "not a JSON object")
        }
        guard let map = json["weight_map"] as? [String: String] else {
            throw CheckpointError.invalidJSON(path: url.path, reason: "no 'weight_map' object of tensor to file names")
        }
        for file in Set(map.values) where file.contains("/") || file.hasPrefix(".") {
            throw CheckpointError.invalidJSON(path: url.path, reason: "shard name '\(file)' is not a plain file name")
        }
        return map
    }

    /// Header entry of a tensor, if the checkpoint has it.
    public func info(_ name: String) -> TensorInfo? {
        fileOfTensor[name].flatMap { files[$0]?.tensors[name] }
    }

    /// All tensor names in the checkpoint.
    public var tensorNames: [String] { fileOfTensor.keys.sorted() }

    /// Loads tensor `name` as `Float`, checking that its shape is `shape`.
    public func load(_ name: String, shape: [Int]) throws -> FloatBuffer {
        let buffer = FloatBuffer(capacity: shape.reduce(1, *))
        try read(name, shape: shape, into: buffer.pointer)
        return buffer
    }

    /// Converts tensor `name` to `Float` into `destination`, checking that its shape is `shape`.
    public func read(_ name: String, shape: [Int], into destination: UnsafeMutablePointer<Float>) throws {
        guard let fileName = fileOfTensor[name], let file = files[fileName] else {
            throw CheckpointError.missingTensor(path: directory.path, tensor: name)
        }
        let info = file.tensors[name]!
        guard info.shape == shape else {
            throw CheckpointError.wrongShape(path: file.path, tensor: name, expected: shape, found: info.shape)
        }
        try file.read(name, into: destination)
    }

    /// Tensors `names` (each `[rows, columns]`, the same `columns`) stacked by rows into one
    /// weight matrix: held in the checkpoint's dtype (memory-mapped where the layout allows)
    /// for `.native`, converted into owned F32 storage for `.f32`. Shapes are checked
    /// against `shapes`.
    public func matrix(_ names: [String], shapes: [[Int]], format: WeightFormat) throws -> WeightMatrix {
        precondition(names.count == shapes.count && !names.isEmpty)
        let columns = shapes[0].count == 1 ? shapes[0][0] : shapes[0][1]
        let rowCounts = shapes.map { $0.count == 1 ? 1 : $0[0] }
        for (name, shape) in zip(names, shapes) {
            let (file, info) = try locate(name)
            guard info.shape == shape else {
                throw CheckpointError.wrongShape(path: file.path, tensor: name, expected: shape, found: info.shape)
            }
        }
        func fill(_ floats: UnsafeMutablePointer<Float>) throws {
            var offset = 0
            for (name, rows) in zip(names, rowCounts) {
                try locate(name).file.read(name, into: floats + offset * columns)
                offset += rows
            }
        }
        switch format {
        case .f32:
            return try WeightMatrix.f32(rows: rowCounts.reduce(0, +), columns: columns, fill: fill)
        case .int8:
            return try WeightMatrix.int8(rows: rowCounts.reduce(0, +), columns: columns, fill: fill)
        case .native:
            var parts: [WeightMatrix.Part] = []
            var owners: [AnyObject] = []
            for (name, rows) in zip(names, rowCounts) {
                let (part, owner) = try locate(name).file.part(name, rows: rows)
                parts.append(part)
                owners.append(owner)
            }
            return WeightMatrix(parts: parts, columns: columns, owners: owners)
        }
    }

    private func locate(_ name: String) throws -> (file: SafetensorsFile, info: TensorInfo) {
        guard let fileName = fileOfTensor[name], let file = files[fileName], let info = file.tensors[name] else {
            throw CheckpointError.missingTensor(path: directory.path, tensor: name)
        }
        return (file, info)
    }
}

/// How a stage holds its weights in memory.
public enum WeightFormat: String, Sendable, CaseIterable {
    /// In the checkpoint's dtype (BF16 and F16 stay two bytes), memory-mapped where possible,
    /// widened to F32 tile by tile just before each matrix product.
    case native
    /// Converted to F32 once, at load: twice the memory of a 16-bit checkpoint, no widening.
    case f32
    /// Quantized at load to int8 per output row (symmetric; 7 bits without VNNI) and packed for
    /// oneDNN, whose int8 products run on VNNI where the CPU has it: half the memory of BF16.
    /// Activations are quantized per row at each product. The embedding table stays native.
    case int8
}
