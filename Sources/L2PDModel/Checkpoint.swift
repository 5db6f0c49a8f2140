import Foundation
import L2PDKernels

/// A LLaDA checkpoint directory in the Hugging Face layout: `config.json` plus either
/// `model.safetensors` or shards listed in `model.safetensors.index.json`. Opening maps the
/// files and validates headers; weights are converted to `Float` only when a stage asks.
public final class Checkpoint: @unchecked Sendable {
    // @unchecked: every stored property is immutable after `init`.
    public let directory: URL
    public let config: ModelConfig
    let files: [String: SafetensorsFile]
    let fileOfTensor: [String: String]

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
        try readFloats(name, into: destination)
    }

    /// The suffix of an int8 weight's scales: `X.weight` (I8, `[rows, columns]`) has
    /// `X.weight_scale` (F32, `[rows]`), and row r is `scale[r] * q[r]` (`l2pd quantize`).
    public static let scaleSuffix = "_scale"

    /// An int8 weight's values and scales, checked against each other.
    func int8Tensor(_ name: String) throws -> (q: UnsafeRawBufferPointer, scales: [Float], rows: Int, columns: Int) {
        let (file, info) = try locate(name)
        guard info.shape.count == 2 else {
            throw CheckpointError.invalidQuantization(path: file.path, tensor: name, reason: "must be a matrix, has shape \(info.shape)")
        }
        let rows = info.shape[0]
        var scales = [Float](repeating: 0, count: rows)
        let scaleName = name + Checkpoint.scaleSuffix
        guard let scaleInfo = self.info(scaleName) else {
            throw CheckpointError.invalidQuantization(path: file.path, tensor: name, reason: "has no scales ('\(scaleName)' not found)")
        }
        guard scaleInfo.shape == [rows], scaleInfo.dtype != "I8" else {
            throw CheckpointError.invalidQuantization(
                path: file.path, tensor: name,
                reason: "needs \(rows) floating-point scales in '\(scaleName)', found \(scaleInfo.dtype) of shape \(scaleInfo.shape)")
        }
        try locate(scaleName).file.read(scaleName, into: &scales)
        for s in scales where !s.isFinite || s <= 0 {
            throw CheckpointError.invalidQuantization(
                path: file.path, tensor: name, reason: "has a scale that is not a positive number: \(s)")
        }
        return (try file.bytes(name), scales, rows, info.shape[1])
    }

    /// Tensor `name` as `Float`: converted from its dtype, or dequantized (`scale[r] * q`) when int8.
    private func readFloats(_ name: String, into destination: UnsafeMutablePointer<Float>) throws {
        let (file, info) = try locate(name)
        guard info.dtype == "I8" else { return try file.read(name, into: destination) }
        let t = try int8Tensor(name)
        let q = t.q.bindMemory(to: Int8.self)
        for r in 0..<t.rows {
            let scale = t.scales[r]
            for c in 0..<t.columns { destination[r * t.columns + c] = Float(q[r * t.columns + c]) * scale }
        }
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
                try readFloats(name, into: floats + offset * columns)
                offset += rows
            }
        }
        // Tensors copied into a held form leave their mapped pages behind, to be dropped.
        func released(_ matrix: WeightMatrix) -> WeightMatrix {
            for name in names {
                locate(name: name)?.release(name)
                if info(name)?.dtype == "I8" { locate(name: name + Checkpoint.scaleSuffix)?.release(name + Checkpoint.scaleSuffix) }
            }
            return matrix
        }
        let quantized = names.map { info($0)?.dtype == "I8" }
        if format == .int8 && quantized.allSatisfy({ $0 }) {
            return released(try int8Matrix(names, rows: rowCounts.reduce(0, +), columns: columns))
        }
        if format == .native && quantized.contains(true) {
            // An int8 checkpoint read without int8 products: dequantized to F32 once.
            return released(try WeightMatrix.f32(rows: rowCounts.reduce(0, +), columns: columns, fill: fill))
        }
        switch format {
        case .f32:
            return released(try WeightMatrix.f32(rows: rowCounts.reduce(0, +), columns: columns, fill: fill))
        case .int8:
            return released(try WeightMatrix.int8(rows: rowCounts.reduce(0, +), columns: columns, fill: fill))
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

    /// Int8 tensors stacked by rows and packed, without an F32 copy. On CPUs whose int8
    /// kernels take 7-bit weights (no VNNI), each row is requantized to that range.
    private func int8Matrix(_ names: [String], rows: Int, columns: Int) throws -> WeightMatrix {
        var q = [Int8](repeating: 0, count: rows * columns)
        var scales = [Float](repeating: 0, count: rows)
        let levels = PackedMatmul.weightLevels
        var row = 0
        for name in names {
            let t = try int8Tensor(name)
            let source = t.q.bindMemory(to: Int8.self)
            for r in 0..<t.rows {
                let top = (0..<t.columns).reduce(0) { max($0, abs(Int(source[r * t.columns + $1]))) }
                // 127 levels read as is; fewer levels keep the top value and round the rest.
                let factor = top > levels ? Float(levels) / Float(top) : 1
                for c in 0..<t.columns {
                    q[(row + r) * columns + c] = Int8((Float(source[r * t.columns + c]) * factor).rounded(.toNearestOrEven))
                }
                scales[row + r] = t.scales[r] / factor
            }
            row += t.rows
        }
        return WeightMatrix(packed: try PackedMatmul(int8: q, scales: scales, rows: rows, columns: columns))
    }

    private func locate(name: String) -> SafetensorsFile? { fileOfTensor[name].flatMap { files[$0] } }

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
