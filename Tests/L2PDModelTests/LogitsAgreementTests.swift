import Testing

@testable import L2PDModel

/// The numbers `bench forward --weights int8` reports about its logits against F32.
@Test func logitsAgreementMeasuresCosineAndArgmaxPerRow() {
    // Row 0: the same direction, twice as long. Row 1: orthogonal, different argmax.
    let a: [Float] = [1, 2, 3, 1, 0, 0]
    let b: [Float] = [2, 4, 6, 0, 1, 0]
    let agreement = LogitsAgreement(a, b, columns: 3)
    #expect(abs(agreement.meanCosine - 0.5) < 1e-9)
    #expect(abs(agreement.smallestCosine) < 1e-9)
    #expect(agreement.sameArgmax == 0.5)
}
