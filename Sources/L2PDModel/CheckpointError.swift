/// Everything that can be wrong with a checkpoint on disk. Each case carries the facts;
/// `description` turns them into one sentence that names the file and the problem.
public enum CheckpointError: Error, Equatable, CustomStringConvertible {
    case missingFile(path: String)
    case unreadableFile(path: String, reason: String)
    case invalidJSON(path: String, reason: String)
    case invalidConfig(path: String, key: String, reason: String)
    case unsupportedConfig(path: String, key: String, value: String, supported: String)
    case invalidHeader(path: String, reason: String)
    case truncatedTensor(path: String, tensor: String, expectedBytes: Int, availableBytes: Int)
    case unsupportedDType(path: String, tensor: String, dtype: String)
    case missingTensor(path: String, tensor: String)
    case wrongShape(path: String, tensor: String, expected: [Int], found: [Int])
    case invalidLayerRange(lower: Int, upper: Int, layers: Int)
    /// An int8 tensor whose scales are missing, misshapen or not positive numbers.
    case invalidQuantization(path: String, tensor: String, reason: String)
    case unwritable(path: String, reason: String)

    public var description: String {
        switch self {
        case .missingFile(let path):
            return "\(path): file not found"
        case .unreadableFile(let path, let reason):
            return "\(path): cannot read file (\(reason))"
        case .invalidJSON(let path, let reason):
            return "\(path): invalid JSON (\(reason))"
        case .invalidConfig(let path, let key, let reason):
            return "\(path): config key '\(key)' \(reason)"
        case .unsupportedConfig(let path, let key, let value, let supported):
            return "\(path): config key '\(key)' has unsupported value \(value) (supported: \(supported))"
        case .invalidHeader(let path, let reason):
            return "\(path): invalid safetensors header (\(reason))"
        case .truncatedTensor(let path, let tensor, let expected, let available):
            return
                "\(path): tensor '\(tensor)' is truncated (needs \(expected) bytes, file has \(available))"
        case .unsupportedDType(let path, let tensor, let dtype):
            return "\(path): tensor '\(tensor)' has unsupported dtype \(dtype) (supported: F32, F16, BF16, F64, and I8 with scales)"
        case .missingTensor(let path, let tensor):
            return "\(path): tensor '\(tensor)' not found"
        case .wrongShape(let path, let tensor, let expected, let found):
            return "\(path): tensor '\(tensor)' has shape \(found), expected \(expected)"
        case .invalidLayerRange(let lower, let upper, let layers):
            return "layer range \(lower)..<\(upper) is not inside the model's \(layers) layers"
        case .invalidQuantization(let path, let tensor, let reason):
            return "\(path): int8 tensor '\(tensor)' \(reason)"
        case .unwritable(let path, let reason):
            return "\(path): cannot write (\(reason))"
        }
    }
}
