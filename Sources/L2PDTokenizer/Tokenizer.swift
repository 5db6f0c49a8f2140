import Foundation

/// Why a `tokenizer.json` could not be used.
public struct TokenizerError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A byte-level BPE tokenizer read from a Hugging Face `tokenizer.json`: added tokens matched
/// before anything else, the pre-tokenizer's split pattern, byte-to-unicode mapping, merges by
/// rank, and the byte-level decoder.
public final class Tokenizer: Sendable {
    public let vocabularySize: Int
    /// Ids of added tokens marked `special` (skipped by `decode(_:skipSpecialTokens: true)`).
    public let specialTokenIDs: Set<Int>

    private let vocabulary: [String: Int]
    private let tokens: [Int: String]
    private let mergeRanks: [MergePair: Int]
    private let ignoreMerges: Bool
    private let addedTokens: [(content: String, id: Int)]
    private let preTokenizer: PreTokenizer

    public convenience init(contentsOf url: URL) throws {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw TokenizerError("\(url.path): cannot read tokenizer file (\(error.localizedDescription))")
        }
        do {
            try self.init(json: data)
        } catch let error as TokenizerError {
            throw TokenizerError("\(url.path): \(error.description)")
        }
    }

    public init(json: Data) throws {
        guard let root = (try? JSONSerialization.jsonObject(with: json)) as? [String: Any] else {
            throw TokenizerError("not a JSON object")
        }
        guard let model = root["model"] as? [String: Any] else { throw TokenizerError("missing key 'model'") }
        let type = model["type"] as? String ?? "BPE"
        guard type == "BPE" else { throw TokenizerError("model.type '\(type)' is not supported (only byte-level BPE)") }
        guard let vocab = model["vocab"] as? [String: Int] else { throw TokenizerError("missing or malformed key 'model.vocab'") }
        if let fallback = model["byte_fallback"] as? Bool, fallback {
            throw TokenizerError("model.byte_fallback is not supported (byte-level BPE only)")
        }
        if let normalizer = root["normalizer"] as? [String: Any] {
            throw TokenizerError("normalizer '\(normalizer["type"] as? String ?? "?")' is not supported")
        }

        var vocabulary = vocab
        var specials = Set<Int>()
        var added: [(String, Int)] = []
        for entry in root["added_tokens"] as? [[String: Any]] ?? [] {
            guard let content = entry["content"] as? String, let id = entry["id"] as? Int else {
                throw TokenizerError("malformed entry in 'added_tokens'")
            }
            vocabulary[content] = id
            added.append((content, id))
            if entry["special"] as? Bool ?? false { specials.insert(id) }
        }
        // Longest first, so a token that is a prefix of another never wins.
        addedTokens = added.sorted { $0.0.utf8.count > $1.0.utf8.count }
        self.vocabulary = vocabulary
        var tokens: [Int: String] = [:]
        for (token, id) in vocabulary { tokens[id] = token }
        self.tokens = tokens
        vocabularySize = (tokens.keys.max() ?? -1) + 1
        specialTokenIDs = specials

        var ranks: [MergePair: Int] = [:]
        for (rank, merge) in (model["merges"] as? [Any] ?? []).enumerated() {
            let parts: [String]
            if let line = merge as? String {
                parts = line.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            } else if let pair = merge as? [String] {
                parts = pair
            } else {
                throw TokenizerError("malformed merge #\(rank)")
            }
            guard parts.count == 2, let a = vocabulary[parts[0]], let b = vocabulary[parts[1]] else {
                throw TokenizerError("merge #\(rank) names tokens missing from the vocabulary")
            }
            if ranks[MergePair(a, b)] == nil { ranks[MergePair(a, b)] = rank }
        }
        mergeRanks = ranks
        ignoreMerges = model["ignore_merges"] as? Bool ?? false
        preTokenizer = try PreTokenizer(root["pre_tokenizer"] as? [String: Any])
        if let decoder = root["decoder"] as? [String: Any], let kind = decoder["type"] as? String, kind != "ByteLevel" {
            throw TokenizerError("decoder '\(kind)' is not supported (only ByteLevel)")
        }
    }

    public func id(of token: String) -> Int? { vocabulary[token] }
    public func token(of id: Int) -> String? { tokens[id] }

    /// Token ids of `text`, with added tokens recognised wherever they occur. No BOS is added.
    public func encode(_ text: String) -> [Int] {
        var ids: [Int] = []
        var pending = Substring(text)
        var plainStart = pending.startIndex
        var index = pending.startIndex
        while index < pending.endIndex {
            if let match = addedTokens.first(where: { pending[index...].hasPrefix($0.content) }) {
                encodePlain(pending[plainStart..<index], into: &ids)
                ids.append(match.id)
                index = pending.utf8.index(index, offsetBy: match.content.utf8.count)
                plainStart = index
            } else {
                index = pending.index(after: index)
            }
        }
        encodePlain(pending[plainStart...], into: &ids)
        pending = ""
        return ids
    }

    /// Text of `ids`; invalid UTF-8 from partial byte sequences becomes U+FFFD.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        var bytes: [UInt8] = []
        for id in ids {
            if skipSpecialTokens && specialTokenIDs.contains(id) { continue }
            guard let token = tokens[id] else { continue }
            if addedTokens.contains(where: { $0.id == id }) {
                bytes.append(contentsOf: token.utf8)
                continue
            }
            for scalar in token.unicodeScalars {
                if let byte = ByteLevel.unicodeToByte[scalar] { bytes.append(byte) } else { bytes.append(contentsOf: String(scalar).utf8) }
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private func encodePlain(_ text: Substring, into ids: inout [Int]) {
        guard !text.isEmpty else { return }
        for piece in preTokenizer.split(String(text)) {
            let mapped = String(String.UnicodeScalarView(piece.utf8.map { ByteLevel.byteToUnicode[Int($0)] }))
            if ignoreMerges, let id = vocabulary[mapped] {
                ids.append(id)
                continue
            }
            bpe(mapped, into: &ids)
        }
    }

    /// Merges adjacent symbols by rank until no known merge remains.
    private func bpe(_ word: String, into ids: inout [Int]) {
        var symbols: [Int] = []
        for scalar in word.unicodeScalars {
            // Every byte-level character is in a byte-level vocabulary; drop what is not.
            if let id = vocabulary[String(scalar)] { symbols.append(id) }
        }
        while symbols.count > 1 {
            var best = Int.max
            var at = -1
            for i in 0..<(symbols.count - 1) {
                if let rank = mergeRanks[MergePair(symbols[i], symbols[i + 1])], rank < best {
                    best = rank
                    at = i
                }
            }
            guard at >= 0, let merged = vocabulary[tokens[symbols[at]]! + tokens[symbols[at + 1]]!] else { break }
            symbols[at] = merged
            symbols.remove(at: at + 1)
        }
        ids.append(contentsOf: symbols)
    }
}

struct MergePair: Hashable {
    let a: Int
    let b: Int
    init(_ a: Int, _ b: Int) {
        self.a = a
        self.b = b
    }
}

/// GPT-2's reversible map from bytes to printable unicode characters.
enum ByteLevel {
    static let byteToUnicode: [Unicode.Scalar] = {
        var printable = Array(33...126) + Array(161...172) + Array(174...255)
        var codes = printable
        var extra = 0
        for b in 0..<256 where !printable.contains(b) {
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
        }
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        for (b, c) in zip(printable, codes) { table[b] = Unicode.Scalar(UInt32(c))! }
        return table
    }()

    static let unicodeToByte: [Unicode.Scalar: UInt8] = {
        var map: [Unicode.Scalar: UInt8] = [:]
        for (b, s) in byteToUnicode.enumerated() { map[s] = UInt8(b) }
        return map
    }()

    /// The split pattern ByteLevel uses when `use_regex` is true (GPT-2).
    static let gpt2Pattern = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
}
