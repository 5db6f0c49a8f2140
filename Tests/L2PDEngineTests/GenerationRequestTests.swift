import Foundation
import L2PDDecoding
import Testing

@testable import L2PDEngine

@Suite struct GenerationRequestTests {
    @Test func limitsSaturateInsteadOfOverflowing() {
        for bytes in [Int.min, -1, 0, 1, 64 << 10, Int.max / 6, Int.max / 6 + 1, Int.max - 1, Int.max] {
            let limits = RequestLimits(maxPromptBytes: bytes)
            #expect(limits.maxPromptBytes >= 1)
            #expect(limits.maxBodyBytes >= limits.maxPromptBytes || limits.maxBodyBytes == Int.max)
        }
        #expect(RequestLimits.unbounded.maxBodyBytes == Int.max)
        #expect(RequestLimits().maxBodyBytes == 6 * 65536 + 16384)
    }

    @Test func promptsAreCheckedBySizeBeforeAnythingElse() throws {
        let limits = RequestLimits(maxPromptBytes: 10)
        #expect(throws: RequestError.self) { try limits.check(prompt: String(repeating: "é", count: 6)) }  // 12 bytes
        #expect(throws: RequestError.self) { try limits.check(prompt: " \n\t ") }
        try limits.check(prompt: "What is 1?")
    }

    @Test func jsonKeysAreSnakeCaseAndFlat() throws {
        var request = GenerationRequest(prompt: "hi", raw: true)
        request.parameters.genLength = 64
        request.parameters.eotpGate = 0.5
        let object = try #require(
            try JSONSerialization.jsonObject(with: try JSONEncoder().encode(request)) as? [String: Any])
        #expect(Set(object.keys) == ["prompt", "raw", "gen_length", "eotp_gate"])
        let decoded = try JSONDecoder().decode(GenerationRequest.self, from: try JSONEncoder().encode(request))
        #expect(decoded == request)
    }

    @Test func typesAreStrictAndErrorsNameTheField() {
        func error(_ json: String) -> String {
            do {
                _ = try JSONDecoder().decode(GenerationRequest.self, from: Data(json.utf8))
                return "accepted"
            } catch {
                return RequestError(decoding: error).description
            }
        }
        #expect(error(#"{"prompt": "hi", "eotp": 1}"#) == #""eotp" must be true or false"#)
        #expect(error(#"{"prompt": "hi", "steps": true}"#) == #""steps" must be an integer"#)
        #expect(error(#"{"prompt": "hi", "tau": "0.5"}"#) == #""tau" must be a number"#)
        #expect(error(#"{"prompt": "hi", "seed": -1}"#).contains("not valid JSON"))
        #expect(error(#"{"prompt": null}"#) == #""prompt" must be a string, not null"#)
        #expect(error(#"{"raw": true}"#) == #""prompt" is required"#)
        #expect(error(#"{"prompt": "hi", "unknown": [1, 2]}"#) == "accepted")
    }
}
