import Foundation
import L2PDKernels

/// Writes F32 (or, rounded to nearest even, BF16) tensors in the safetensors format (8-byte little-endian header length, JSON
/// header with dtype, shape and data offsets, then the raw data), for small project-made
/// files such as the decoding filter, its training records and random benchmark models.
public enum SafetensorsWriter {
    public struct Tensor {
        public var name: String
        public var shape: [Int]
        public var values: [Float]
        public init(name: String, shape: [Int], values: [Float]) {
            precondition(shape.reduce(1, *) == values.count, "shape \(shape) does not hold \(values.count) values")
            self.name = name
            self.shape = shape
            self.values = values
        }
    }

    /// Writes `tensors` to `url`, every one as `dtype` (`.f32` or `.bf16`).
    public static func write(_ tensors: [Tensor], metadata: [String: String] = [:], dtype: WeightDType = .f32, to url: URL) throws {
        precondition(dtype != .f16, "F16 output is not supported")
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for t in tensors {
            let bytes = dtype.size * t.values.count
            header[t.name] = ["dtype": dtype == .f32 ? "F32" : "BF16", "shape": t.shape, "data_offsets": [offset, offset + bytes]]
            offset += bytes
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data(capacity: 8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for t in tensors {
            if dtype == .f32 {
                t.values.withUnsafeBytes { out.append(contentsOf: $0) }
            } else {
                let halves = t.values.map { DTypeConversion.floatToBF16($0).littleEndian }
                halves.withUnsafeBytes { out.append(contentsOf: $0) }
            }
        }
        try out.write(to: url, options: .atomic)
    }
}
