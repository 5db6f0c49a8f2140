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
