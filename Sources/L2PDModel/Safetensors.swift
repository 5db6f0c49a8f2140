import Foundation
import L2PDKernels

#if canImport(Glibc)
    import Glibc
#endif

/// Where one tensor lives in a safetensors file.
public struct TensorInfo: Sendable, Equatable {
    public var name: String
    /// The dtype as written in the header (`F32`, `BF16`, ...).
    public var dtype: String
    public var shape: [Int]
    /// Byte offset of the tensor's data from the start of the file.
    public var offset: Int
    public var byteCount: Int

    public var elementCount: Int { shape.reduce(1, *) }
}

/// A read-only, memory-mapped safetensors file. The header is parsed and every tensor's
/// extent is validated when the file is opened; tensor data is only touched when a tensor is
/// read, so a stage that needs a few layers of a large shard pages in only those.
public final class SafetensorsFile: @unchecked Sendable {
    // @unchecked: the mapping is read-only and never changes after `init`.
    public let path: String
    public let tensors: [String: TensorInfo]
    public let metadata: [String: String]
    private let base: UnsafeRawPointer
    private let size: Int

    /// Largest header we accept; real checkpoints have headers of a few hundred kilobytes.
    public static let maxHeaderBytes = 100 << 20

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            if errno == ENOENT { throw CheckpointError.missingFile(path: path) }
            throw CheckpointError.unreadableFile(path: path, reason: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else {
            throw CheckpointError.unreadableFile(path: path, reason: String(cString: strerror(errno)))
        }
        let size = Int(status.st_size)
        guard size >= 8 else {
            throw CheckpointError.invalidHeader(path: path, reason: "file has \(size) bytes, fewer than the 8-byte header length")
        }
        guard let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0),
            mapped != UnsafeMutableRawPointer(bitPattern: -1)
        else {
            throw CheckpointError.unreadableFile(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        let base = UnsafeRawPointer(mapped)
        do {
            (tensors, metadata) = try SafetensorsFile.parseHeader(base: base, size: size, path: path)
        } catch {
            munmap(mapped, size)
            throw error
        }
        self.base = base
        self.size = size
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), size) }

    static func parseHeader(base: UnsafeRawPointer, size: Int, path: String) throws -> ([String: TensorInfo], [String: String]) {
        let headerLength = UInt64(littleEndian: base.loadUnaligned(as: UInt64.self))
        guard headerLength <= UInt64(maxHeaderBytes), Int(headerLength) <= size - 8 else {
            throw CheckpointError.invalidHeader(
                path: path, reason: "header length \(headerLength) exceeds the file (\(size) bytes)")
        }
        let headerData = Data(bytes: base + 8, count: Int(headerLength))
        guard let json = (try? JSONSerialization.jsonObject(with: headerData)) as? [String: Any] else {
            throw CheckpointError.invalidHeader(path: path, reason: "header is not a JSON object")
        }
        let dataStart = 8 + Int(headerLength)
        var tensors: [String: TensorInfo] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in json {
            if name == "__metadata__" {
                for (k, v) in (value as? [String: Any]) ?? [:] { metadata[k] = "\(v)" }
                continue
            }
            guard let entry = value as? [String: Any],
                let dtype = entry["dtype"] as? String,
                let shape = (entry["shape"] as? [NSNumber])?.map({ $0.intValue }),
                let offsets = (entry["data_offsets"] as? [NSNumber])?.map({ $0.intValue }),
                offsets.count == 2, offsets[0] >= 0, offsets[0] <= offsets[1],
                shape.allSatisfy({ $0 >= 0 })
            else {
                throw CheckpointError.invalidHeader(path: path, reason: "entry for '\(name)' is malformed")
            }
            let info = TensorInfo(
                name: name, dtype: dtype, shape: shape, offset: dataStart + offsets[0],
                byteCount: offsets[1] - offsets[0])
            if dataStart + offsets[1] > size {
                throw CheckpointError.truncatedTensor(
                    path: path, tensor: name, expectedBytes: info.byteCount,
                    availableBytes: max(0, size - info.offset))
            }
            if let width = SafetensorsFile.elementBytes(dtype), width * info.elementCount != info.byteCount {
                throw CheckpointError.invalidHeader(
                    path: path,
                    reason: "'\(name)' declares \(info.byteCount) bytes for shape \(shape) of \(dtype)")
            }
            tensors[name] = info
        }
        return (tensors, metadata)
    }

    static func elementBytes(_ dtype: String) -> Int? {
        switch dtype {
        case "F32": return 4
        case "F16", "BF16": return 2
        case "F64": return 8
        case "I8": return 1
        default: return nil
        }
    }

    /// Converts tensor `name` to `Float` into `destination` (room for `elementCount` floats).
    /// Lets the kernel drop the pages of tensor `name` from this process (they were copied,
    /// converted or packed, and nothing reads them again): a worker's resident memory then holds
    /// what it computes with, not the file it came from. A later read faults them back in.
    public func release(_ name: String) {
        guard let info = tensors[name], info.byteCount > 0 else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        // Whole pages inside the tensor only: its neighbours may still be in use.
        let start = (info.offset + page - 1) / page * page
        let end = (info.offset + info.byteCount) / page * page
        guard end > start else { return }
        madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, Int32(MADV_DONTNEED))
    }

    /// The raw bytes of tensor `name` in the mapping (read-only), for copying or int8 weights.
    public func bytes(_ name: String) throws -> UnsafeRawBufferPointer {
        guard let info = tensors[name] else { throw CheckpointError.missingTensor(path: path, tensor: name) }
        return UnsafeRawBufferPointer(start: base + info.offset, count: info.byteCount)
    }

    public func read(_ name: String, into destination: UnsafeMutablePointer<Float>) throws {
        guard let info = tensors[name] else {
            throw CheckpointError.missingTensor(path: path, tensor: name)
        }
        let source = base + info.offset
        let count = info.elementCount
        switch info.dtype {
        case "F32":
            UnsafeMutableRawPointer(destination).copyMemory(from: source, byteCount: count * 4)
        case "BF16" where Int(bitPattern: source) % 2 == 0:
            DTypeConversion.bf16ToFloat(source.assumingMemoryBound(to: UInt16.self), destination, count: count)
        case "BF16":
            for i in 0..<count {
                let bits = UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                destination[i] = Float(bitPattern: UInt32(bits) << 16)
            }
        case "F16":
            for i in 0..<count {
                let bits = UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                destination[i] = Float(Float16(bitPattern: bits))
            }
        case "F64":
            for i in 0..<count {
                destination[i] = Float(source.loadUnaligned(fromByteOffset: 8 * i, as: Double.self))
            }
        default:
            throw CheckpointError.unsupportedDType(path: path, tensor: name, dtype: info.dtype)
        }
    }

    /// Tensor `name` as a weight part held in its own dtype: pointing into the mapping when
    /// the dtype is F32, BF16 or F16 and the data is aligned for it, otherwise copied (or, for
    /// F64, converted to F32) into storage returned as the part's owner.
    public func part(_ name: String, rows: Int) throws -> (part: WeightMatrix.Part, owner: AnyObject) {
        guard let info = tensors[name] else {
            throw CheckpointError.missingTensor(path: path, tensor: name)
        }
        let source = base + info.offset
        let dtype: WeightDType
        switch info.dtype {
        case "F32": dtype = .f32
        case "BF16": dtype = .bf16
        case "F16": dtype = .f16
        case "F64":
            let storage = WeightStorage(byteCount: info.elementCount * 4)
            try read(name, into: storage.bytes.bindMemory(to: Float.self, capacity: info.elementCount))
            return (WeightMatrix.Part(base: storage.bytes, rows: rows, dtype: .f32), storage)
        default:
            throw CheckpointError.unsupportedDType(path: path, tensor: name, dtype: info.dtype)
        }
        if Int(bitPattern: source) % dtype.size == 0 {
            return (WeightMatrix.Part(base: source, rows: rows, dtype: dtype), self)
        }
        let storage = WeightStorage(byteCount: info.byteCount)
        storage.bytes.copyMemory(from: source, byteCount: info.byteCount)
        return (WeightMatrix.Part(base: storage.bytes, rows: rows, dtype: dtype), storage)
    }
}
