import Foundation
import L2PDEngine

/// Draws accuracy against tokens per forward pass for every evaluation row as an SVG
/// scatter plot (a Pareto picture: up and to the right is better).
public enum ParetoPlot {
    public static func svg(_ rows: [EvaluationRow], title: String = "Accuracy against tokens per forward pass") -> String {
        let (width, height) = (760.0, 480.0)
        let (left, right, top, bottom) = (70.0, 200.0, 40.0, 60.0)
        let maxTPF = max(1, (rows.map(\.tpf).max() ?? 1) * 1.1)
        let minAccuracy = max(0, min(0.9, (rows.map(\.accuracy).min() ?? 0) - 0.05))
        func x(_ tpf: Double) -> Double { left + tpf / maxTPF * (width - left - right) }
        func y(_ accuracy: Double) -> Double { top + (1 - (accuracy - minAccuracy) / (1 - minAccuracy)) * (height - top - bottom) }
        let colors = ["none": "#1f77b4", "prefix": "#2ca02c", "dual": "#d62728"]
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" font-family="sans-serif" font-size="11">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(width / 2 - 100)" y="22" font-size="14">\(title)</text>
            <line x1="\(left)" y1="\(height - bottom)" x2="\(width - right)" y2="\(height - bottom)" stroke="black"/>
            <line x1="\(left)" y1="\(top)" x2="\(left)" y2="\(height - bottom)" stroke="black"/>
            <text x="\((width - right) / 2)" y="\(height - 20)">tokens per forward pass (TPF)</text>
            <text x="14" y="\(height / 2)" transform="rotate(-90 14 \(height / 2))">accuracy</text>

            """
        for i in 0...5 {
            let t = maxTPF * Double(i) / 5
            let a = minAccuracy + (1 - minAccuracy) * Double(i) / 5
            svg += "<text x=\"\(x(t) - 8)\" y=\"\(height - bottom + 16)\">\(String(format: "%.1f", t))</text>\n"
            svg += "<text x=\"\(left - 40)\" y=\"\(y(a) + 4)\">\(String(format: "%.2f", a))</text>\n"
        }
        for (i, r) in rows.enumerated() {
            let label = "\(r.eotp ? r.policy + "+eotp" : r.policy) \(r.cache) \(r.gen_length)"
            let color = colors[r.cache] ?? "#555"
            svg += "<circle cx=\"\(x(r.tpf))\" cy=\"\(y(r.accuracy))\" r=\"5\" fill=\"\(color)\" opacity=\"0.8\"/>\n"
            svg += "<text x=\"\(x(r.tpf) + 7)\" y=\"\(y(r.accuracy) - 6 + Double(i % 3) * 6)\" fill=\"\(color)\">\(label)</text>\n"
        }
        for (i, (cache, color)) in colors.sorted(by: { $0.key > $1.key }).enumerated() {
            svg += "<circle cx=\"\(width - right + 20)\" cy=\"\(top + 20 + Double(i) * 18)\" r=\"5\" fill=\"\(color)\"/>"
            svg += "<text x=\"\(width - right + 30)\" y=\"\(top + 24 + Double(i) * 18)\">cache \(cache)</text>\n"
        }
        return svg + "</svg>\n"
    }
}
