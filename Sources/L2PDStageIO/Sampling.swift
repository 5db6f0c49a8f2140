/// Temperature and seed for the readout. Temperature 0 is greedy. The Gumbel noise for a
/// (seed, step, position, token) is a pure function of those four, so a request samples the
/// same tokens wherever its stages run.
public struct Sampling: Sendable, Equatable {
    public var temperature: Float
    public var seed: UInt64
    public var step: Int

    public init(temperature: Float = 0, seed: UInt64 = 0, step: Int = 0) {
        self.temperature = temperature
        self.seed = seed
        self.step = step
    }

    public static let greedy = Sampling()
}
