import L2PDStageIO

extension Frame {
    /// The frame's bytes. Throws a `ProtocolError` when a value cannot travel (the same rules
    /// the decoder enforces), so every encoded frame decodes.
    public func encode() throws -> [UInt8] {
        let size = try encodedCount()
        return [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            raw.initializeMemory(as: UInt8.self, repeating: 0)
            var writer = WireWriter(base: raw.baseAddress)
            write(&writer, frameSize: size)
            initialized = size
        }
    }

    /// Replaces `buffer`'s contents with the frame, reusing its capacity.
    public func encode(into buffer: inout [UInt8]) throws {
        let size = try encodedCount()
        buffer.removeAll(keepingCapacity: true)
        buffer.append(contentsOf: repeatElement(0, count: size))
        buffer.withUnsafeMutableBytes { raw in
            var writer = WireWriter(base: raw.baseAddress)
            write(&writer, frameSize: size)
        }
    }

    /// Writes the frame at the start of `buffer` (e.g. an nng message body) and returns its
    /// length; throws `truncated` if `buffer` is too small.
    @discardableResult
    public func encode(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let size = try encodedCount()
        guard size <= buffer.count, let base = buffer.baseAddress else {
            throw ProtocolError(.truncated, "a buffer of \(buffer.count) bytes cannot hold the \(size)-byte frame")
        }
        var writer = WireWriter(base: base)
        write(&writer, frameSize: size)
        return size
    }

    /// The encoded length in bytes, after validating every value.
    public func encodedCount() throws -> Int {
        try validate()
        var measure = WireWriter(base: nil)
        write(&measure, frameSize: 0)
        guard measure.offset <= ProtocolLimits.maxFrameBytes else {
            throw ProtocolError(.frameTooLarge, "frame of \(measure.offset) bytes exceeds \(ProtocolLimits.maxFrameBytes)")
        }
        return measure.offset
    }

    // MARK: Writing (values already validated)

    private func write(_ w: inout WireWriter, frameSize: Int) {
        w.u32(ProtocolLimits.magic)
        w.u16(ProtocolLimits.version)
        w.u8(message.kind.rawValue)
        w.u8(0)
        w.u64(requestID)
        w.u32(step)
        w.u32(max(0, frameSize - ProtocolLimits.headerBytes))
        switch message {
        case .hello(let h):
            w.u16(h.protocolVersion)
            w.u8(h.role.rawValue)
            w.u8(0)
            w.u32(h.name.utf8.count)
            w.u64(h.modelFingerprint)
            w.u64(h.nonce)
            w.text(h.name)
        case .shardAssignment(let s):
            w.u64(s.modelFingerprint)
            w.u32(s.totalLayers)
            w.u32(s.layers.lowerBound)
            w.u32(s.layers.upperBound)
            w.u8((s.embeds ? 1 : 0) | (s.readsOut ? 2 : 0))
            w.u8(0)
            w.u16(0)
            w.u32(s.nextStageURL.utf8.count)
            w.u32(0)
            w.text(s.nextStageURL)
        case .forward(let f):
            writeForward(f, &w)
        case .chainedForward(let c):
            w.u32(c.route.count)
            w.u32(0)
            for url in c.route {
                w.u32(url.utf8.count)
                w.u32(0)
                w.text(url)
            }
            writeForward(c.forward, &w)
        case .hiddenStates(let h):
            writeBatch(h.batch, &w)
            writeTensors([.f32(h.hidden.values, dims: [h.hidden.rows, h.hidden.dModel])], &w)
        case .readout(let r):
            writeReadout(r, &w)
        case .releaseCache(let ids):
            w.u32(ids.count)
            w.u32(0)
            for id in ids { w.u64(id) }
        case .ping(let nonce):
            w.u64(nonce)
        case .pong(let nonce, let weightBytes, let cacheBytes):
            w.u64(nonce)
            w.u64(weightBytes)
            w.u64(cacheBytes)
        case .error(let e):
            w.u16(e.code)
            w.u16(0)
            w.u32(e.text.utf8.count)
            w.text(e.text)
        }
    }

    private func writeForward(_ f: ForwardRequest, _ w: inout WireWriter) {
        writeBatch(f.batch, &w)
        switch f.input {
        case .tokens(let tokens):
            writeTensors([.i32(tokens, dims: [tokens.count])], &w)
        case .hidden(let h):
            writeTensors([.f32(h.values, dims: [h.rows, h.dModel])], &w)
        }
    }

    private func writeBatch(_ batch: [SequenceForward], _ w: inout WireWriter) {
        w.u32(batch.count)
        w.u32(0)
        for s in batch {
            w.u64(s.sequenceID)
            w.u64(s.sampling.seed)
            w.u32(s.length)
            w.u32(s.computed.lowerBound)
            w.u32(s.computed.upperBound)
            w.u32(s.sampling.step)
            w.f32(s.sampling.temperature)
            w.u8(s.cache.rawValue)
            w.u8(s.wantsEOSProbability ? 1 : 0)
            w.u16(UInt16(truncatingIfNeeded: s.topK))
            w.u32(Runs.count(s.readPositions))
            w.u32(s.readPositions.count)
            Runs.forEach(s.readPositions) { first, count in
                w.u32(first)
                w.u32(count)
            }
        }
    }

    private func writeReadout(_ reply: ReadoutReply, _ w: inout WireWriter) {
        w.u32(reply.sequences.count)
        w.u32(0)
        var tokens: [Int] = []
        var confidences: [Float] = []
        var eos: [Float] = []
        var topTokens: [Int] = []
        var topProbabilities: [Float] = []
        for entry in reply.sequences {
            let r = entry.readout
            let n = r.positions.count
            w.u64(entry.sequenceID)
            w.u32(Runs.count(r.positions))
            w.u32(n)
            w.u16(UInt16(truncatingIfNeeded: n > 0 ? r.topTokens.count / n : 0))
            w.u8(r.eosProbabilities.isEmpty ? 0 : 1)
            w.u8(0)
            w.u32(0)
            Runs.forEach(r.positions) { first, count in
                w.u32(first)
                w.u32(count)
            }
            tokens += r.tokens
            confidences += r.confidences
            eos += r.eosProbabilities
            topTokens += r.topTokens
            topProbabilities += r.topProbabilities
        }
        var tensors: [OutTensor] = [.i32(tokens, dims: [tokens.count]), .f32(confidences, dims: [confidences.count])]
        if !eos.isEmpty { tensors.append(.f32(eos, dims: [eos.count])) }
        if !topTokens.isEmpty {
            tensors.append(.i32(topTokens, dims: [topTokens.count]))
            tensors.append(.f32(topProbabilities, dims: [topProbabilities.count]))
        }
        writeTensors(tensors, &w)
    }

    private enum OutTensor {
        case f32([Float], dims: [Int])
        case i32([Int], dims: [Int])

        var dtype: TensorDType {
            switch self {
            case .f32: .f32
            case .i32: .i32
            }
        }
        var dims: [Int] {
            switch self {
            case .f32(_, let dims), .i32(_, let dims): dims
            }
        }
        var byteCount: Int {
            switch self {
            case .f32(let v, _): 4 * v.count
            case .i32(let v, _): 4 * v.count
            }
        }
    }

    private func writeTensors(_ tensors: [OutTensor], _ w: inout WireWriter) {
        w.u32(tensors.count)
        w.u32(0)
        for t in tensors {
            w.u8(t.dtype.rawValue)
            w.u8(UInt8(t.dims.count))
            w.u16(0)
            w.u32(t.byteCount)
            for d in t.dims { w.u32(d) }
            w.padding(to: 8)
        }
        w.padding(to: ProtocolLimits.payloadAlignment)
        for t in tensors {
            switch t {
            case .f32(let values, _): w.floats(values)
            case .i32(let values, _): w.int32s(values)
            }
            w.padding(to: ProtocolLimits.payloadAlignment)
        }
    }

    // MARK: Validation (the decoder's rules, on Swift values)

    private func validate() throws {
        switch message {
        case .hello(let h):
            guard h.protocolVersion >= 1 else { throw ProtocolError(.invalidValue, "hello protocol version 0") }
            try Validate.text(h.name, "hello name")
        case .shardAssignment(let s):
            try Validate.layers(total: s.totalLayers, first: s.layers.lowerBound, end: s.layers.upperBound)
            try Validate.shardFlags(
                embeds: s.embeds, readsOut: s.readsOut, first: s.layers.lowerBound, end: s.layers.upperBound, total: s.totalLayers)
            try Validate.text(s.nextStageURL, "next-stage URL")
            try Validate.url(hasNUL: s.nextStageURL.utf8.contains(0), isEmpty: s.nextStageURL.isEmpty, readsOut: s.readsOut)
        case .forward(let f):
            try Validate.forward(f)
        case .chainedForward(let c):
            try Validate.route(c.route)
            try Validate.forward(c.forward)
        case .hiddenStates(let h):
            try Validate.hidden(h.hidden, rows: try Validate.batch(h.batch))
        case .readout(let r):
            try Validate.readout(r)
        case .releaseCache(let ids):
            guard ids.count <= ProtocolLimits.maxReleaseIDs else {
                throw ProtocolError(.limitExceeded, "\(ids.count) release ids exceed \(ProtocolLimits.maxReleaseIDs)")
            }
            var seen = Set<UInt64>()
            for id in ids where !seen.insert(id).inserted {
                throw ProtocolError(.duplicateSequence, "sequence \(id) is released twice in one frame")
            }
        case .ping, .pong:
            break
        case .error(let e):
            guard e.code != 0 else { throw ProtocolError(.invalidValue, "error code 0") }
            try Validate.text(e.text, "error text")
        }
    }
}

/// Rules shared by encoding (on Swift values) and decoding (on wire values).
enum Validate {
    static func forward(_ f: ForwardRequest) throws {
        let rows = try Validate.batch(f.batch)
        switch f.input {
        case .tokens(let tokens):
            guard tokens.count == rows else {
                throw ProtocolError(.badTensor, "token tensor has \(tokens.count) rows, the batch computes \(rows)")
            }
            try Validate.tensorBytes(4 * tokens.count, "token tensor")
            try Validate.tokens(tokens, "token")
        case .hidden(let h):
            try Validate.hidden(h, rows: rows)
        }
    }

    /// A chained pass's remaining stages: at most `maxRouteHops` URLs, each non-empty valid text
    /// without a NUL byte.
    static func route(_ route: [String]) throws {
        guard route.count <= ProtocolLimits.maxRouteHops else {
            throw ProtocolError(.limitExceeded, "a route of \(route.count) stages exceeds \(ProtocolLimits.maxRouteHops)")
        }
        for url in route { try routeURL(url) }
    }

    static func routeURL(_ url: String) throws {
        try text(url, "route URL")
        guard !url.isEmpty, !url.utf8.contains(0) else {
            throw ProtocolError(.invalidValue, "a route URL must be non-empty and hold no NUL byte")
        }
    }

    static func text(_ string: String, _ what: String) throws {
        let count = string.utf8.count
        guard count <= ProtocolLimits.maxTextBytes else {
            throw ProtocolError(.limitExceeded, "\(what) of \(count) bytes exceeds \(ProtocolLimits.maxTextBytes)")
        }
    }

    static func url(hasNUL: Bool, isEmpty: Bool, readsOut: Bool) throws {
        guard !hasNUL else { throw ProtocolError(.invalidValue, "next-stage URL contains a NUL byte") }
        guard !isEmpty || readsOut else {
            throw ProtocolError(.invalidValue, "a stage that does not read out needs a next-stage URL")
        }
    }

    static func layers(total: Int, first: Int, end: Int) throws {
        guard total <= ProtocolLimits.maxLayers else {
            throw ProtocolError(.limitExceeded, "\(total) layers exceed \(ProtocolLimits.maxLayers)")
        }
        guard total >= 1, first >= 0, first < end, end <= total else {
            throw ProtocolError(.invalidRange, "layer range \(first)..<\(end) is not inside 0..<\(total) or is empty")
        }
    }

    static func shardFlags(embeds: Bool, readsOut: Bool, first: Int, end: Int, total: Int) throws {
        guard embeds == (first == 0) else {
            throw ProtocolError(.invalidValue, "embeds is \(embeds) for layers starting at \(first)")
        }
        guard readsOut == (end == total) else {
            throw ProtocolError(.invalidValue, "reads-out is \(readsOut) for layers ending at \(end) of \(total)")
        }
    }

    static func tensorBytes(_ count: Int, _ what: String) throws {
        guard count <= ProtocolLimits.maxTensorBytes else {
            throw ProtocolError(.limitExceeded, "\(what) of \(count) bytes exceeds \(ProtocolLimits.maxTensorBytes)")
        }
    }

    static func dModel(_ d: Int) throws {
        guard d <= ProtocolLimits.maxDModel else {
            throw ProtocolError(.limitExceeded, "d_model \(d) exceeds \(ProtocolLimits.maxDModel)")
        }
        guard d >= 1 else { throw ProtocolError(.badTensor, "hidden states with d_model \(d)") }
    }

    static func tokens(_ tokens: [Int], _ what: String) throws {
        for t in tokens where t < 0 || t > Int(Int32.max) {
            throw ProtocolError(.invalidValue, "\(what) id \(t) is not in 0...\(Int32.max)")
        }
    }

    static func probabilities(_ values: [Float], _ what: String) throws {
        for p in values where !(p.isFinite && p >= 0) {
            throw ProtocolError(.invalidValue, "\(what) \(p) is not a finite non-negative number")
        }
    }

    static func hidden(_ h: HiddenTensor, rows: Int) throws {
        try dModel(h.dModel)
        let (expected, overflow) = rows.multipliedReportingOverflow(by: h.dModel)
        guard !overflow, h.values.count == expected else {
            throw ProtocolError(.badTensor, "hidden tensor has \(h.values.count) values, the batch needs \(rows) x \(h.dModel)")
        }
        try tensorBytes(4 * h.values.count, "hidden tensor")
    }

    static func sequenceCount(_ count: Int) throws {
        guard count <= ProtocolLimits.maxSequences else {
            throw ProtocolError(.limitExceeded, "\(count) sequences exceed \(ProtocolLimits.maxSequences)")
        }
        guard count >= 1 else { throw ProtocolError(.invalidValue, "a batch needs at least one sequence") }
    }

    /// The per-record rules of section 5, in field order, except read positions.
    static func record(id: UInt64, length: Int, start: Int, end: Int, temperature: Float, cache: CacheDirective?, rawCache: Int, topK: Int)
        throws -> CacheDirective
    {
        guard length >= 1, length <= ProtocolLimits.maxCanvasLength else {
            throw ProtocolError(.invalidRange, "sequence \(id): length \(length) is not in 1...\(ProtocolLimits.maxCanvasLength)")
        }
        guard start >= 0, start < end, end <= length else {
            throw ProtocolError(.invalidRange, "sequence \(id): computed range \(start)..<\(end) is empty or outside 0..<\(length)")
        }
        guard temperature.isFinite, temperature >= 0 else {
            throw ProtocolError(.invalidValue, "sequence \(id): temperature \(temperature) is not finite and non-negative")
        }
        guard let cache else { throw ProtocolError(.invalidValue, "sequence \(id): unknown cache directive \(rawCache)") }
        guard cache == .reuse || (start == 0 && end == length) else {
            throw ProtocolError(.invalidRange, "sequence \(id): cache directive \(cache) must compute 0..<\(length), not \(start)..<\(end)")
        }
        guard topK >= 0 else { throw ProtocolError(.invalidValue, "sequence \(id): top k \(topK)") }
        guard topK <= ProtocolLimits.maxTopK else {
            throw ProtocolError(.limitExceeded, "sequence \(id): top k \(topK) exceeds \(ProtocolLimits.maxTopK)")
        }
        return cache
    }

    static func readTotal(_ total: Int) throws {
        guard total <= ProtocolLimits.maxReadPositions else {
            throw ProtocolError(.limitExceeded, "\(total) read positions in one frame exceed \(ProtocolLimits.maxReadPositions)")
        }
    }

    /// Validates a batch and returns its computed row count.
    static func batch(_ batch: [SequenceForward]) throws -> Int {
        try sequenceCount(batch.count)
        var rows = 0
        var reads = 0
        var seen = Set<UInt64>()
        for s in batch {
            _ = try record(
                id: s.sequenceID, length: s.length, start: s.computed.lowerBound, end: s.computed.upperBound,
                temperature: s.sampling.temperature, cache: s.cache, rawCache: Int(s.cache.rawValue), topK: s.topK)
            guard s.sampling.step >= 0, s.sampling.step <= Int(UInt32.max) else {
                throw ProtocolError(.invalidValue, "sequence \(s.sequenceID): sampling step \(s.sampling.step) is not in 0...\(UInt32.max)")
            }
            reads += s.readPositions.count
            try readTotal(reads)
            for p in s.readPositions where !s.computed.contains(p) {
                throw ProtocolError(
                    .readPositionOutside, "sequence \(s.sequenceID): read position \(p) is outside the computed range \(s.computed)")
            }
            guard seen.insert(s.sequenceID).inserted else {
                throw ProtocolError(.duplicateSequence, "sequence \(s.sequenceID) appears twice in one batch")
            }
            rows += s.computed.count
        }
        return rows
    }

    static func readout(_ reply: ReadoutReply) throws {
        try sequenceCount(reply.sequences.count)
        var total = 0
        var tensorValues = 0
        var seen = Set<UInt64>()
        for entry in reply.sequences {
            let r = entry.readout
            let id = entry.sequenceID
            let n = r.positions.count
            guard r.tokens.count == n, r.confidences.count == n else {
                throw ProtocolError(
                    .badTensor, "sequence \(id): \(n) positions but \(r.tokens.count) tokens and \(r.confidences.count) confidences")
            }
            guard r.eosProbabilities.isEmpty || r.eosProbabilities.count == n else {
                throw ProtocolError(.badTensor, "sequence \(id): \(r.eosProbabilities.count) EOS probabilities for \(n) positions")
            }
            guard r.topTokens.count == r.topProbabilities.count, n > 0 ? r.topTokens.count % n == 0 : r.topTokens.isEmpty else {
                throw ProtocolError(
                    .badTensor,
                    "sequence \(id): \(r.topTokens.count) top tokens and \(r.topProbabilities.count) top probabilities for \(n) positions")
            }
            if n > 0, r.topTokens.count / n > ProtocolLimits.maxTopK {
                throw ProtocolError(.limitExceeded, "sequence \(id): top k \(r.topTokens.count / n) exceeds \(ProtocolLimits.maxTopK)")
            }
            total += n
            try readTotal(total)
            for p in r.positions where p < 0 || p >= ProtocolLimits.maxCanvasLength {
                throw ProtocolError(.invalidRange, "sequence \(id): position \(p) is not in 0..<\(ProtocolLimits.maxCanvasLength)")
            }
            guard seen.insert(id).inserted else {
                throw ProtocolError(.duplicateSequence, "sequence \(id) appears twice in one readout")
            }
            try tokens(r.tokens, "sequence \(id): token")
            try tokens(r.topTokens, "sequence \(id): top token")
            try probabilities(r.confidences, "sequence \(id): confidence")
            try probabilities(r.eosProbabilities, "sequence \(id): EOS probability")
            try probabilities(r.topProbabilities, "sequence \(id): top probability")
            tensorValues += r.topTokens.count
        }
        try tensorBytes(4 * tensorValues, "top-k tensor")
    }
}
