import Foundation

/// One worker as the coordinator sees it.
public struct WorkerEndpoint: Sendable, Equatable, Codable {
    public var url: String
    public var layers: Range<Int>
    public init(url: String, layers: Range<Int>) {
        self.url = url
        self.layers = layers
    }
}
