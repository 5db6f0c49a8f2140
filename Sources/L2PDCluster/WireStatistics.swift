import Foundation

/// Traffic and time of the forward passes so far.
public struct WireStatistics: Sendable, Equatable, Codable {
    public var forwards = 0
    public var bytesSent = 0
    public var bytesReceived = 0
    /// Seconds from sending a frame to a stage until its reply arrived, summed over stages.
    public var roundTripSeconds = 0.0
    /// `roundTripSeconds` by stage, in layer order.
    public var stageSeconds: [Double] = []
    public init() {}
    public var bytesPerForward: Double { forwards > 0 ? Double(bytesSent + bytesReceived) / Double(forwards) : 0 }
}
