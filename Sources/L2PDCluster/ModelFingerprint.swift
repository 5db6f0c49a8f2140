import Foundation

/// A 64-bit identity of a checkpoint directory, equal on every machine holding the same files:
/// FNV-1a over config.json, and per safetensors file its size, header and first 4 KiB of data.
/// Cheap (no weights are read beyond that) and enough to catch a worker with another model.
public enum ModelFingerprint {
    public static func of(directory: URL) throws -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        func mix(_ bytes: some Sequence<UInt8>) { for b in bytes { hash = (hash ^ UInt64(b)) &* 0x100_0000_01B3 } }
        mix(try Data(contentsOf: directory.appendingPathComponent("config.json")))
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".safetensors") }.sorted()
        for name in names {
            let handle = try FileHandle(forReadingFrom: directory.appendingPathComponent(name))
            defer { try? handle.close() }
            let size = try handle.seekToEnd()
            mix(withUnsafeBytes(of: size.littleEndian) { Array($0) })
            try handle.seek(toOffset: 0)
            let head = try handle.read(upToCount: 8) ?? Data()
            guard head.count == 8 else { continue }
            let headerLength = head.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self).littleEndian }
            mix(head)
            mix(try handle.read(upToCount: Int(min(headerLength, 100_000_000)) + 4096) ?? Data())
        }
        return hash == 0 ? 1 : hash  // 0 means "no model" on the wire
    }
}
