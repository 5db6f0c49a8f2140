import Foundation
import L2PDDefaultModel
import L2PDKernels
import L2PDModel
import Testing

@testable import L2PDDecoding

/// A BF16 copy of the embedded model in a temporary directory: every tensor rounded to BF16
/// (the dtype real LLaDA checkpoints ship in), same config.
func bf16CopyOfDefaultModel() throws -> URL {
    let source = try defaultCheckpoint()
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("l2pd-bf16-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    try FileManager.default.copyItem(
        at: source.directory.appendingPathComponent("config.json"), to: directory.appendingPathComponent("config.json"))
    let tensors = try source.tensorNames.map { name -> SafetensorsWriter.Tensor in
        let shape = try #require(source.info(name)).shape
        let buffer = try source.load(name, shape: shape)
        let values = Array(UnsafeBufferPointer(start: buffer.pointer, count: shape.reduce(1, *)))
        return SafetensorsWriter.Tensor(name: name, shape: shape, values: values)
    }
    try SafetensorsWriter.write(tensors, dtype: .bf16, to: directory.appendingPathComponent("model.safetensors"))
    return directory
}

/// BF16 widens to F32 exactly, so holding the weights in BF16 and widening them tile by tile
/// must decode the same tokens as converting them all at load, in half the memory.
@Test(arguments: [CacheMode.none, .dual])
func nativeBF16WeightsDecodeLikeF32(cache: CacheMode) async throws {
    let directory = try bf16CopyOfDefaultModel()
    defer { try? FileManager.default.removeItem(at: directory) }
    let checkpoint = try Checkpoint(directory: directory)
    #expect(checkpoint.info("model.transformer.blocks.0.q_proj.weight")?.dtype == "BF16")
    let native = try InProcessPipeline(checkpoint: checkpoint, layerRanges: [0..<2, 2..<4], threads: 2, weights: .native)
    let f32 = try InProcessPipeline(checkpoint: checkpoint, layerRanges: [0..<2, 2..<4], threads: 2, weights: .f32)

    // Norm weights stay F32 in both, so native is a little above half.
    let ratio = Double(native.weightBytes) / Double(f32.weightBytes)
    #expect(ratio > 0.49 && ratio < 0.52, "native holds \(native.weightBytes) bytes, f32 \(f32.weightBytes)")

    var options = GenerationOptions()
    options.genLength = 64
    options.blockLength = 32
    options.cache = cache
    let prompts = [[5, 17, 42, 99, 7], [3, 3, 3], Array(10..<60)]
    for (i, prompt) in prompts.enumerated() {
        let a = try await Decoder(pipeline: native).generate(prompt: prompt, options: options, sequenceID: UInt64(i + 1))
        let b = try await Decoder(pipeline: f32).generate(prompt: prompt, options: options, sequenceID: UInt64(i + 1))
        #expect(a.canvas == b.canvas, "prompt #\(i)")
        #expect(a.statistics.nfe == b.statistics.nfe)
    }
}

/// int8 weights (quantized per row at load, products on oneDNN): under half of F32's weight
/// bytes on the embedded model (its embedding stays F32), and answers to the task suite's prompts that
/// agree with F32's on most prompts (quantization may flip a near tie, so not all), with
/// no wrong-shape or NaN output anywhere.
@Test func int8WeightsDecodeCloseToF32() async throws {
    let checkpoint = try defaultCheckpoint()
    let int8 = try InProcessPipeline(checkpoint: checkpoint, layerRanges: [0..<2, 2..<4], threads: 2, weights: .int8)
    let f32 = try InProcessPipeline(checkpoint: checkpoint, layerRanges: [0..<2, 2..<4], threads: 2, weights: .f32)
    #expect(int8.weightBytes < f32.weightBytes / 2, "int8 holds \(int8.weightBytes) bytes, f32 \(f32.weightBytes)")
    var options = GenerationOptions()
    options.genLength = 32
    options.blockLength = 16
    let golden = try GoldenDecodes.load()
    let prompts = Array(Set(golden.runs.map(\.prompt))).sorted { $0.count < $1.count }
    var same = 0
    for (i, prompt) in prompts.enumerated() {
        let a = try await Decoder(pipeline: int8).generate(prompt: prompt, options: options, sequenceID: UInt64(i + 1))
        let b = try await Decoder(pipeline: f32).generate(prompt: prompt, options: options, sequenceID: UInt64(i + 1))
        #expect(a.canvas.count == b.canvas.count)
        if a.canvas == b.canvas { same += 1 }
    }
    #expect(prompts.count >= 3 && same * 3 >= prompts.count * 2, "\(same) of \(prompts.count) answers identical")
}

/// `l2pd quantize`'s checkpoint: each projection row within half a step of the original
/// (`|scale * q - w| <= scale / 2`, `scale = max|w| / 127`), the embedding and norms copied,
/// and `--weights int8` from it decodes exactly what quantizing at load decodes (where the CPU
/// takes 127-level weights), while `--weights native` dequantizes it.
@Test func aQuantizedCheckpointHoldsRowsWithinHalfAStepAndDecodesLikeQuantizingAtLoad() async throws {
    let original = try defaultCheckpoint()
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("l2pd-int8-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: directory) }
    try CheckpointQuantizer.write(original, to: directory)
    let quantized = try Checkpoint(directory: directory)
    var checked = 0
    for name in original.tensorNames {
        let info = try #require(original.info(name))
        let copy = try #require(quantized.info(name))
        #expect(copy.shape == info.shape)
        guard CheckpointQuantizer.isProjection(name, config: original.config) else {
            #expect(copy.dtype == info.dtype, "\(name) copied as is")
            continue
        }
        #expect(copy.dtype == "I8" && quantized.info(name + Checkpoint.scaleSuffix)?.shape == [info.shape[0]])
        let w = try original.load(name, shape: info.shape)
        let back = try quantized.load(name, shape: info.shape)
        let (rows, columns) = (info.shape[0], info.shape[1])
        for r in 0..<rows {
            let top = (0..<columns).reduce(Float(0)) { max($0, abs(w.pointer[r * columns + $1])) }
            let step = top > 0 ? top / 127 : 1
            for c in 0..<columns { #expect(abs(back.pointer[r * columns + c] - w.pointer[r * columns + c]) <= step / 2 * 1.0001) }
        }
        checked += 1
    }
    #expect(checked == 7 * original.config.layers + (original.config.weightTying ? 0 : 1))

    var options = GenerationOptions()
    options.genLength = 32
    options.blockLength = 16
    let fromFile = try InProcessPipeline(checkpoint: quantized, threads: 2, weights: .int8)
    let atLoad = try InProcessPipeline(checkpoint: original, threads: 2, weights: .int8)
    let dequantized = try InProcessPipeline(checkpoint: quantized, threads: 2, weights: .native)
    #expect(fromFile.weightBytes < dequantized.weightBytes / 2)
    for (i, prompt) in Array(Set(try GoldenDecodes.load().runs.map(\.prompt))).enumerated() {
        let a = try await Decoder(pipeline: fromFile).generate(prompt: prompt, options: options, sequenceID: UInt64(i + 1))
        let b = try await Decoder(pipeline: atLoad).generate(prompt: prompt, options: options, sequenceID: UInt64(i + 1))
        _ = try await Decoder(pipeline: dequantized).generate(prompt: prompt, options: options, sequenceID: UInt64(i + 1))
        if PackedMatmul.weightLevels == 127 { #expect(a.canvas == b.canvas, "prompt #\(i)") }
    }
}

/// An int8 tensor without usable scales is refused with one line naming it.
@Test func int8TensorsWithoutUsableScalesAreRefused() throws {
    let config = try defaultCheckpoint().directory.appendingPathComponent("config.json")
    func attempt(_ scale: SafetensorsWriter.Tensor?) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("l2pd-bad-int8-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: config, to: directory.appendingPathComponent("config.json"))
        let model = directory.appendingPathComponent("model.safetensors")
        try SafetensorsWriter.write(scale.map { [$0] } ?? [], to: model)
        // Splice an I8 tensor in by hand: the writer only writes floats.
        let data = try Data(contentsOf: model)
        let headerLength = Int(data.prefix(8).withUnsafeBytes { $0.load(as: UInt64.self) })
        var header = try #require(try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + headerLength))) as? [String: Any])
        let dataStart = data.count - 8 - headerLength
        header["w.weight"] = ["dtype": "I8", "shape": [2, 3], "data_offsets": [dataStart, dataStart + 6]]
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        out.append(data.subdata(in: (8 + headerLength)..<data.count))
        out.append(contentsOf: [1, 2, 3, 0xFF, 0x80, 0x7F])
        try out.write(to: model)
        do {
            _ = try Checkpoint(directory: directory).load("w.weight", shape: [2, 3])
            return "loaded"
        } catch { return "\(error)" }
    }
    #expect(try attempt(nil).contains("int8 tensor 'w.weight' has no scales"))
    #expect(try attempt(.init(name: "w.weight_scale", shape: [3], values: [1, 1, 1])).contains("needs 2 floating-point scales"))
    #expect(try attempt(.init(name: "w.weight_scale", shape: [2], values: [1, -1])).contains("not a positive number"))
    #expect(try attempt(.init(name: "w.weight_scale", shape: [2], values: [1, .nan])).contains("not a positive number"))
    #expect(try attempt(.init(name: "w.weight_scale", shape: [2], values: [0.5, 2])) == "loaded")
}
