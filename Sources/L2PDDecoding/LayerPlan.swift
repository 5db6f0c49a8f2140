import L2PDModel

/// How layers are split into contiguous stages.
public enum LayerPlan {
    /// `count` near-equal contiguous ranges covering `layers`.
    public static func even(layers: Int, stages count: Int) -> [Range<Int>] {
        let count = max(1, min(count, layers))
        return (0..<count).map { i in (layers * i / count)..<(layers * (i + 1) / count) }
    }

    /// Throws unless `ranges` are non-empty, in order, contiguous and cover `0..<layers`.
    public static func validate(_ ranges: [Range<Int>], layers: Int) throws {
        var next = 0
        for range in ranges {
            guard range.lowerBound == next, !range.isEmpty, range.upperBound <= layers else {
                throw CheckpointError.invalidLayerRange(lower: range.lowerBound, upper: range.upperBound, layers: layers)
            }
            next = range.upperBound
        }
        guard next == layers else {
            throw CheckpointError.invalidLayerRange(lower: next, upper: layers, layers: layers)
        }
    }
}
