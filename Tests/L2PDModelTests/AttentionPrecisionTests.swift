import L2PDKernels
import Testing

@testable import L2PDModel

/// Attention's products go BF16 only with int8 weights (the approximate fast path) on CPUs
/// that run them, unless L2PD_ATTENTION asks; F32 wherever BF16 cannot run.
@Test func attentionProductsAreBF16OnlyWithInt8WeightsOrWhenAsked() {
    let possible = Attention.supportsBF16(headDimension: 64)
    #expect(Stage.attentionPrecision(format: .int8, headDimension: 64, asked: nil) == (possible ? .bf16 : .f32))
    #expect(Stage.attentionPrecision(format: .native, headDimension: 64, asked: nil) == .f32)
    #expect(Stage.attentionPrecision(format: .f32, headDimension: 64, asked: nil) == .f32)
    #expect(Stage.attentionPrecision(format: .int8, headDimension: 64, asked: "f32") == .f32)
    #expect(Stage.attentionPrecision(format: .native, headDimension: 64, asked: "bf16") == (possible ? .bf16 : .f32))
    #expect(Stage.attentionPrecision(format: .int8, headDimension: 6, asked: "bf16") == .f32)
    #expect(Stage.attentionPrecision(format: .int8, headDimension: 64, asked: "fast") == (possible ? .bf16 : .f32))
}
