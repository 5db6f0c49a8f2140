import Foundation
import L2PDCommandLine
import L2PDDecoding
import L2PDTokenizer

/// A live terminal picture of diffusion decoding: the answer canvas redrawn after every
/// step, masked positions dim, this step's commits highlighted, end-of-text faint.
final class CanvasView: Sendable {
    let tokenizer: Tokenizer
    let maskTokenID: Int
    let eosTokenID: Int

    init(tokenizer: Tokenizer, maskTokenID: Int, eosTokenID: Int) {
        self.tokenizer = tokenizer
        self.maskTokenID = maskTokenID
        self.eosTokenID = eosTokenID
    }

    func draw(_ event: StepEvent) {
        let committed = Set(event.committed)
        var text = "\u{1B}[H\u{1B}[2J\u{1B}[1mstep \(event.step + 1)  block \(event.block + 1)  "
        text += "committed \(event.committed.count)  canvas \(event.answerLength)\u{1B}[0m\n\n"
        for (i, token) in event.answer.enumerated() {
            if token == maskTokenID {
                text += "\u{1B}[2m░\u{1B}[0m"
            } else if token == eosTokenID {
                text += committed.contains(i) ? "\u{1B}[7m⏎\u{1B}[0m" : "\u{1B}[2m·\u{1B}[0m"
            } else {
                let piece = tokenizer.decode([token]).replacingOccurrences(of: "\n", with: "↵\n")
                text += committed.contains(i) ? "\u{1B}[7;32m\(piece)\u{1B}[0m" : piece
            }
        }
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
        usleep(30_000)  // let the eye follow the steps
    }
}
