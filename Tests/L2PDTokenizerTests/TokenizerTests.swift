import Foundation
import Testing

@testable import L2PDTokenizer

/// Golden ids and decodes written by scripts/make_tokenizer_fixtures.py with Hugging Face `tokenizers`.
struct Golden: Decodable {
    struct Case: Decodable {
        let text: String
        let ids: [Int]
        let decoded: String
        let decoded_skip_special: String
    }
    let vocab_size: Int
    let specials: [String: Int]
    let cases: [Case]
}

func fixture(_ name: String) throws -> (Tokenizer, Golden) {
    let directory = Bundle.module.resourceURL!.appendingPathComponent("Fixtures").appendingPathComponent(name)
    let tokenizer = try Tokenizer(contentsOf: directory.appendingPathComponent("tokenizer.json"))
    let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: directory.appendingPathComponent("golden.json")))
    return (tokenizer, golden)
}

@Test(arguments: ["llama3-style", "gpt2-style"])
func encodesLikeHuggingFace(_ name: String) throws {
    let (tokenizer, golden) = try fixture(name)
    #expect(tokenizer.vocabularySize == golden.vocab_size)
    for c in golden.cases {
        #expect(tokenizer.encode(c.text) == c.ids, "\(name): \(c.text.debugDescription)")
    }
}

@Test(arguments: ["llama3-style", "gpt2-style"])
func decodesLikeHuggingFace(_ name: String) throws {
    let (tokenizer, golden) = try fixture(name)
    for c in golden.cases {
        #expect(tokenizer.decode(c.ids) == c.decoded, "\(name): \(c.text.debugDescription)")
        #expect(tokenizer.decode(c.ids, skipSpecialTokens: true) == c.decoded_skip_special, "\(name): \(c.text.debugDescription)")
    }
}

@Test func specialTokensHaveTheirIDs() throws {
    let (tokenizer, golden) = try fixture("llama3-style")
    for (token, id) in golden.specials {
        #expect(tokenizer.id(of: token) == id)
        #expect(tokenizer.token(of: id) == token)
        #expect(tokenizer.specialTokenIDs.contains(id))
    }
}

@Test func digitsAreSingleTokensInTheDefaultRecipe() throws {
    let (tokenizer, _) = try fixture("llama3-style")
    let ids = tokenizer.encode("90817")
    #expect(ids.count == 5)
    #expect(ids.map { tokenizer.decode([$0]) } == ["9", "0", "8", "1", "7"])
}

@Test func chatFormatMatchesLLaDAInstruct() {
    let text = ChatFormat.llaDAInstruct(user: "Hi")
    #expect(
        text == "<|startoftext|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
}

@Test func malformedFilesGiveClearErrors() throws {
    func message(_ json: String) -> String? {
        do {
            _ = try Tokenizer(json: Data(json.utf8))
            return nil
        } catch let error as TokenizerError {
            return error.description
        } catch {
            return "unexpected \(error)"
        }
    }
    #expect(message("[1, 2]") == "not a JSON object")
    #expect(message("{}") == "missing key 'model'")
    #expect(message(#"{"model": {"type": "Unigram"}}"#)?.contains("Unigram") == true)
    #expect(message(#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}}"#)?.contains("merge #0") == true)
    #expect(message(#"{"model": {"type": "BPE", "vocab": {}}, "pre_tokenizer": {"type": "Metaspace"}}"#)?.contains("Metaspace") == true)
    #expect(message(#"{"model": {"type": "BPE", "vocab": {}}, "normalizer": {"type": "NFC"}}"#)?.contains("NFC") == true)
    let missing = URL(fileURLWithPath: "/nonexistent/tokenizer.json")
    #expect(throws: TokenizerError.self) { try Tokenizer(contentsOf: missing) }
}

/// Conversations rendered by Jinja from LLaDA-8B-Instruct's chat template and tokenized by
/// Hugging Face `tokenizers` (scripts/make_chat_fixture.py).
@Test func multiTurnChatFormatMatchesTheTemplateAndTokenizers() throws {
    struct Golden: Decodable {
        struct Case: Decodable {
            let messages: [ChatMessage]
            let text: String
            let ids: [Int]
        }
        let cases: [Case]
    }
    let directory = Bundle.module.resourceURL!.appendingPathComponent("Fixtures").appendingPathComponent("chat")
    let tokenizer = try Tokenizer(contentsOf: directory.appendingPathComponent("tokenizer.json"))
    let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: directory.appendingPathComponent("golden.json")))
    #expect(golden.cases.count >= 5)
    #expect(golden.cases.contains { $0.messages.count >= 5 })
    for c in golden.cases {
        let text = ChatFormat.llaDAInstruct(messages: c.messages)
        #expect(text == c.text, "\(c.messages.map(\.role))")
        #expect(tokenizer.encode(text) == c.ids, "\(c.messages.map(\.role))")
    }
}
