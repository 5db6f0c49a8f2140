import Foundation
import L2PDStageIO
import Testing

@testable import L2PDModel

/// A stage keeps at most `CacheLimits.maxSequences` K/V caches; beyond that the least recently
/// used one is dropped and its owner hears why when it comes back.
@Test func kvCachesAreBoundedAndAnEvictedSequenceIsToldWhy() throws {
    let checkpoint = try Checkpoint(directory: Fixtures.directory("tiny-llada"))
    let stage = Stage(weights: try StageWeights(checkpoint: checkpoint, layers: 0..<checkpoint.config.layers))
    stage.cacheLimits = CacheLimits(maxSequences: 3)
    let tokens = Array(repeating: 3, count: 8)
    for id in UInt64(1)...5 {
        let refresh = SequenceForward(sequenceID: id, length: 8, cache: .refresh, readPositions: [7])
        _ = try stage.forward([refresh], input: .tokens(tokens))
        #expect(stage.cachedSequenceCount <= 3)
    }
    // Sequences 1 and 2 were used least recently: dropped, with a clear error on reuse.
    let reuse = { (id: UInt64) in SequenceForward(sequenceID: id, length: 8, computed: 4..<8, cache: .reuse, readPositions: [7]) }
    #expect(throws: StageError.cacheEvicted(sequenceID: 1, maxSequences: 3, maxBytes: CacheLimits().maxBytes)) {
        try stage.forward([reuse(1)], input: .tokens(Array(tokens[4..<8])))
    }
    _ = try stage.forward([reuse(5)], input: .tokens(Array(tokens[4..<8])))
    // A byte limit of one cache keeps only the newest.
    stage.cacheLimits = CacheLimits(maxSequences: 100, maxBytes: stage.cacheByteCount / 3 + 1)
    _ = try stage.forward([SequenceForward(sequenceID: 9, length: 8, cache: .refresh, readPositions: [7])], input: .tokens(tokens))
    #expect(stage.cachedSequenceCount == 1)
}
