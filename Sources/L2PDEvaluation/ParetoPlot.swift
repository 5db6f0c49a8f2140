import Foundation
import L2PDEngine

/// Draws accuracy against tokens per forward pass for every evaluation row as an SVG (a Pareto
/// picture: up and to the right is better). Rows of one rule and cache mode form one curve
/// (a swept parameter's values, joined in TPF order); colour names the rule, the dash the cache.
public enum ParetoPlot {
    public static func svg(_ rows: [EvaluationRow], title: String = "Accuracy against tokens per forward pass") -> String {
        let (width, height) = (860.0, 520.0)
        let (left, right, top, bottom) = (70.0, 250.0, 40.0, 60.0)
        let maxTPF = max(1, (rows.map(\.tpf).max() ?? 1) * 1.1)
        let minAccuracy = max(0, min(0.9, (rows.map(\.accuracy).min() ?? 0) - 0.05))
        func x(_ tpf: Double) -> Double { left + tpf / maxTPF * (width - left - right) }
        func y(_ accuracy: Double) -> Double { top + (1 - (accuracy - minAccuracy) / (1 - minAccuracy)) * (height - top - bottom) }
        let palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]
        let dashes = ["none": "", "prefix": "2,3", "dual": "7,4"]
        // One series per rule (policy with or without EoTP) and cache mode, in first-seen order.
        var series: [(rule: String, cache: String, rows: [EvaluationRow])] = []
        for r in rows {
            let rule = r.eotp ? r.policy + "+eotp" : r.policy
            if let i = series.firstIndex(where: { $0.rule == rule && $0.cache == r.cache && $0.rows.first?.gen_length == r.gen_length }) {
                series[i].rows.append(r)
            } else {
                series.append((rule, r.cache, [r]))
            }
        }
        var rules: [String] = []
        for s in series where !rules.contains(s.rule) { rules.append(s.rule) }
        func color(_ rule: String) -> String { palette[(rules.firstIndex(of: rule) ?? 0) % palette.count] }
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" font-family="sans-serif" font-size="11">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(left)" y="22" font-size="14">\(escape(title))</text>
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
        for s in series {
            let c = color(s.rule)
            let points = s.rows.sorted { $0.tpf < $1.tpf }
            if points.count > 1 {
                let path = points.map { "\(x($0.tpf)),\(y($0.accuracy))" }.joined(separator: " ")
                let dash = dashes[s.cache].map { $0.isEmpty ? "" : " stroke-dasharray=\"\($0)\"" } ?? ""
                svg += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(c)\" stroke-width=\"1.5\"\(dash)/>\n"
            }
            for r in points {
                svg += "<circle cx=\"\(x(r.tpf))\" cy=\"\(y(r.accuracy))\" r=\"4\" fill=\"\(c)\" opacity=\"0.85\">"
                svg += "<title>\(escape(r.label)) cache=\(r.cache) gen=\(r.gen_length): accuracy \(String(format: "%.3f", r.accuracy)), "
                svg += "TPF \(String(format: "%.2f", r.tpf))</title></circle>\n"
            }
            // A lone point (no sweep) is labelled where it stands.
            if points.count == 1, let r = points.first {
                svg += "<text x=\"\(x(r.tpf) + 6)\" y=\"\(y(r.accuracy) - 6)\" fill=\"\(c)\">\(escape(r.label))</text>\n"
            }
        }
        // Legend: one line per rule and cache mode.
        for (i, s) in series.enumerated() {
            let ly = top + 10 + Double(i) * 16
            let dash = dashes[s.cache].map { $0.isEmpty ? "" : " stroke-dasharray=\"\($0)\"" } ?? ""
            svg += "<line x1=\"\(width - right + 15)\" y1=\"\(ly)\" x2=\"\(width - right + 40)\" y2=\"\(ly)\" stroke=\"\(color(s.rule))\" "
            svg += "stroke-width=\"2\"\(dash)/>"
            svg +=
                "<text x=\"\(width - right + 46)\" y=\"\(ly + 4)\">\(escape(s.rule)) cache \(s.cache) gen \(s.rows[0].gen_length)</text>\n"
        }
        return svg + "</svg>\n"
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }
}
