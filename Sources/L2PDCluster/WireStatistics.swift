import Foundation

/// Traffic and time of the forward passes so far.
public struct WireStatistics: Sendable, Equatable, Codable {
    public var forwards = 0
    public var bytesSent = 0
    public var bytesReceived = 0
    /// Frames that crossed a link for the forwards (a request or its answer): `2 × stages` per
    /// relayed pass, `stages + 1` per chained one.
    public var transits = 0
    /// Seconds from sending a frame to a stage until its reply arrived, summed over stages.
    public var roundTripSeconds = 0.0
    /// `roundTripSeconds` by stage, in layer order.
    public var stageSeconds: [Double] = []
    /// Passes that computed whole canvases (no cache, or a cache refresh), and their seconds
    /// from the first frame sent to the readouts back.
    public var fullPasses = 0
    public var fullPassSeconds = 0.0
    /// Passes that reused kept caches (cached steps), and their seconds.
    public var cachedSteps = 0
    public var cachedStepSeconds = 0.0
    public init() {}
    /// Bytes through the coordinator per forward (sent and received).
    public var bytesPerForward: Double { forwards > 0 ? Double(bytesSent + bytesReceived) / Double(forwards) : 0 }
    public var transitsPerForward: Double { forwards > 0 ? Double(transits) / Double(forwards) : 0 }
}
