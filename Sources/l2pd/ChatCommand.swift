import Foundation
import L2PDCommandLine
import L2PDDecoding
import L2PDEngine

/// `l2pd chat`: an interactive conversation; each line of standard input is a user turn.
struct ChatCommand: Command {
    static let path = ["chat"]
    static let summary = "Talk with the model: each line is a turn, the whole conversation is sent every time."
    static let usage = "l2pd chat [options]   (type /reset to start over, /quit or end of input to leave)"
    static let options: [OptionSpec] =
        DecodingOptions.specs + [
            .option("system", "TEXT", "A system message that opens the conversation."),
            .flag("stats", "Print each turn's prompt tokens, NFE, TPF and time on standard error."),
            .flag("visualize", "Show the canvas filling in live."),
        ]

    static func run(_ o: ParsedOptions) async throws {
        let generator = try DecodingOptions.generator(o)
        let config = generator.decoder.pipeline.config
        let filter = try ModelLocator.filter(o.string("filter"))
        let options = try DecodingFlags.parameters(o).options(maxSequenceLength: config.maxSequenceLength, filter: filter)
        var session = ChatSession(generator: generator, system: o.string("system"))
        let interactive = isatty(STDIN_FILENO) == 1
        var onStep: (@Sendable (StepEvent) -> Void)? = nil
        if o.has("visualize") {
            let view = CanvasView(tokenizer: generator.tokenizer, maskTokenID: config.maskTokenID, eosTokenID: config.eosTokenID)
            onStep = { event in view.draw(event) }
        }
        if interactive { printError("l2pd chat: /reset starts over, /quit leaves") }
        var turn = 0
        while true {
            if interactive { FileHandle.standardError.write(Data("> ".utf8)) }
            guard let line = readLine() else { break }
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.isEmpty { continue }
            if text == "/quit" || text == "/exit" { break }
            if text == "/reset" {
                session.reset()
                printError("(conversation reset)")
                continue
            }
            do {
                let promptTokens = generator.tokenizer.encode(session.prompt(for: text)).count
                let output = try await session.send(text, options: options, onStep: onStep)
                turn += 1
                print(output.text)
                if o.has("stats") {
                    let s = output.statistics
                    printError(
                        String(
                            format: "turn %d: prompt %d tokens  nfe %d  tpf %.2f  %.2f s", turn, promptTokens, s.nfe, s.tpf, s.seconds))
                }
            } catch {
                // A turn that cannot run (too long for the context, say) is reported; the chat goes on.
                printError("l2pd chat: \(error)" + (error is GenerationError ? " (/reset starts over)" : ""))
            }
        }
    }
}
