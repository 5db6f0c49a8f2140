import Foundation
import L2PDKernels

/// Writes an int8 copy of a checkpoint (`l2pd quantize`): every projection weight of the
/// transformer blocks, and an untied output head, becomes `X.weight` in I8 (`[rows, columns]`,
/// symmetric per row, 127 levels) plus `X.weight_scale` in F32 (`[rows]`), so that
/// `W[r] ≈ scale[r] * q[r]`; every other tensor (embedding, norms) is copied byte for byte.
/// Shards mirror the input's (with an index when the input has one); `config.json` and the
/// tokenizer files are copied. Tensors are streamed one at a time, so memory stays at one
/// tensor's F32 copy whatever the model's size.
public enum CheckpointQuantizer {
    /// Block weights that go through matrix products.
    static let projections = ["q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out"]

    /// Whether tensor `name` is quantized: a block projection, or the untied LM head.
    public static func isProjection(_ name: String, config: ModelConfig) -> Bool {
        if name == "model.transformer.ff_out.weight" { return !config.weightTying }
        guard name.hasPrefix("model.transformer.blocks."), name.hasSuffix(".weight") else { return false }
        let short = name.dropLast(".weight".count).split(separator: ".").last.map(String.init) ?? ""
        return projections.contains(short)
    }

    /// Quantizes `checkpoint` into `output` (created; must not exist or be empty). Returns the
    /// bytes of tensor data written. `progress(done, total)` counts tensors.
    @discardableResult
    public static func write(
        _ checkpoint: Checkpoint, to output: URL, progress: (Int, Int) -> Void = { _, _ in }
    ) throws -> Int {
        let manager = FileManager.default
        if manager.fileExists(atPath: output.path) {
            guard (try manager.contentsOfDirectory(atPath: output.path)).isEmpty else {
                throw CheckpointError.unwritable(path: output.path, reason: "the output directory exists and is not empty")
            }
        }
        try manager.createDirectory(at: output, withIntermediateDirectories: true)
        // Everything but the weights travels as is (config, tokenizer, generation config, ...).
        for name in try manager.contentsOfDirectory(atPath: checkpoint.directory.path)
        where !name.hasSuffix(".safetensors") && name != Checkpoint.indexFileName {
            var isDirectory: ObjCBool = false
            let source = checkpoint.directory.appendingPathComponent(name)
            guard manager.fileExists(atPath: source.path, isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
            try manager.copyItem(at: source, to: output.appendingPathComponent(name))
        }
        let shards = checkpoint.files.keys.sorted()
        let total = checkpoint.fileOfTensor.count
        var done = 0
        var written = 0
        var weightMap: [String: String] = [:]
        for shard in shards {
            let file = checkpoint.files[shard]!
            let names = file.tensors.keys.filter { checkpoint.fileOfTensor[$0] == shard }.sorted()
            // The header first: every entry's dtype, shape and extent are known before any data.
            var entries: [(name: String, dtype: String, shape: [Int], bytes: Int)] = []
            for name in names {
                let info = file.tensors[name]!
                if isProjection(name, config: checkpoint.config) && info.shape.count == 2 && info.dtype != "I8" {
                    entries.append((name, "I8", info.shape, info.elementCount))
                    entries.append((name + Checkpoint.scaleSuffix, "F32", [info.shape[0]], info.shape[0] * 4))
                } else {
                    entries.append((name, info.dtype, info.shape, info.byteCount))
                }
            }
            var header: [String: Any] = ["__metadata__": ["format": "pt", "quantization": "l2pd int8: symmetric per output row"]]
            var offset = 0
            for e in entries {
                header[e.name] = ["dtype": e.dtype, "shape": e.shape, "data_offsets": [offset, offset + e.bytes]]
                offset += e.bytes
                weightMap[e.name] = shard
            }
            var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
            while json.count % 8 != 0 { json.append(0x20) }
            let url = output.appendingPathComponent(shard)
            guard manager.createFile(atPath: url.path, contents: nil) else {
                throw CheckpointError.unwritable(path: url.path, reason: "cannot create the file")
            }
            let handle = try FileHandle(forWritingTo: url)
            defer { try? handle.close() }
            try handle.write(contentsOf: withUnsafeBytes(of: UInt64(json.count).littleEndian) { Data($0) })
            try handle.write(contentsOf: json)
            for name in names {
                let info = file.tensors[name]!
                if isProjection(name, config: checkpoint.config) && info.shape.count == 2 && info.dtype != "I8" {
                    let (rows, columns) = (info.shape[0], info.shape[1])
                    let floats = UnsafeMutablePointer<Float>.allocate(capacity: rows * columns)
                    defer { floats.deallocate() }
                    try file.read(name, into: floats)
                    var q = [Int8](repeating: 0, count: rows * columns)
                    var scales = [Float](repeating: 0, count: rows)
                    PackedMatmul.quantize(floats, rows: rows, columns: columns, levels: 127, into: &q, scales: &scales)
                    try q.withUnsafeBytes { try handle.write(contentsOf: Data($0)) }
                    try scales.map(\.bitPattern.littleEndian).withUnsafeBytes { try handle.write(contentsOf: Data($0)) }
                    file.release(name)
                    written += rows * columns + rows * 4
                } else {
                    // Copied in 64 MiB pieces: an 8B model's embedding is a gigabyte.
                    let bytes = try file.bytes(name)
                    var start = 0
                    while start < bytes.count {
                        let end = min(start + (64 << 20), bytes.count)
                        try handle.write(contentsOf: Data(bytes[start..<end]))
                        start = end
                    }
                    file.release(name)
                    written += bytes.count
                }
                done += 1
                progress(done, total)
            }
        }
        if manager.fileExists(atPath: checkpoint.directory.appendingPathComponent(Checkpoint.indexFileName).path) {
            let index: [String: Any] = ["metadata": ["total_size": written], "weight_map": weightMap]
            try JSONSerialization.data(withJSONObject: index, options: [.sortedKeys, .prettyPrinted])
                .write(to: output.appendingPathComponent(Checkpoint.indexFileName))
        }
        return written
    }
}
