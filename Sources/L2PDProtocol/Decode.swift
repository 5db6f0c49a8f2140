import L2PDStageIO

extension Frame {
    /// Decodes and validates one frame. Every structural rule of `proto/PROTOCOL.md` is checked
    /// (header, lengths, reserved bytes and padding, counts against limits, ranges, runs,
    /// tensor descriptors against the batch) before any tensor payload is read; a violation
    /// throws a `ProtocolError` with the code to answer with. Never traps on any input.
    public static func decode(from bytes: UnsafeRawBufferPointer) throws -> Frame {
        let header = try FrameHeader.decode(from: bytes)
        var r = WireReader(bytes, offset: ProtocolLimits.headerBytes)
        let message: Message
        switch header.kind {
        case .hello: message = .hello(try decodeHello(&r))
        case .shardAssignment: message = .shardAssignment(try decodeShard(&r))
        case .forward: message = .forward(try decodeForward(&r))
        case .chainedForward:
            let hops = Int(try r.u32("route hop count"))
            guard hops <= ProtocolLimits.maxRouteHops else {
                throw ProtocolError(.limitExceeded, "a route of \(hops) stages exceeds \(ProtocolLimits.maxRouteHops)")
            }
            try r.reserved(4, "route reserved field")
            var route: [String] = []
            for _ in 0..<hops {
                let count = Int(try r.u32("route URL length"))
                try r.reserved(4, "route URL reserved field")
                let url = try r.text(count: count, "route URL")
                try Validate.routeURL(url)
                route.append(url)
            }
            message = .chainedForward(ChainedForward(route: route, forward: try decodeForward(&r)))
        case .hiddenStates:
            let (batch, rows) = try decodeBatch(&r)
            var tensors = try TensorTable.readDescriptors(&r, count: 1)
            let d = try tensors[0].hiddenWidth(rows: rows)
            try TensorTable.readPayloads(&r, &tensors)
            message = .hiddenStates(HiddenStates(batch: batch, hidden: HiddenTensor(dModel: d, values: tensors[0].floats(r.bytes))))
        case .readout: message = .readout(try decodeReadout(&r))
        case .releaseCache:
            let count = Int(try r.u32("release count"))
            guard count <= ProtocolLimits.maxReleaseIDs else {
                throw ProtocolError(.limitExceeded, "\(count) release ids exceed \(ProtocolLimits.maxReleaseIDs)")
            }
            try r.reserved(4, "release reserved field")
            try r.need(8 * count, "\(count) release ids")
            var ids: [UInt64] = []
            ids.reserveCapacity(count)
            var seen = Set<UInt64>()
            for _ in 0..<count {
                let id = try r.u64("release id")
                guard seen.insert(id).inserted else {
                    throw ProtocolError(.duplicateSequence, "sequence \(id) is released twice in one frame")
                }
                ids.append(id)
            }
            message = .releaseCache(ids)
        case .ping: message = .ping(nonce: try r.u64("ping nonce"))
        case .pong:
            message = .pong(
                nonce: try r.u64("pong nonce"), weightBytes: try r.u64("pong weight bytes"), cacheBytes: try r.u64("pong cache bytes"))
        case .error:
            let code = try r.u16("error code")
            guard code != 0 else { throw ProtocolError(.invalidValue, "error code 0") }
            try r.reserved(2, "error reserved field")
            let count = Int(try r.u32("error text length"))
            message = .error(ErrorReport(code: code, text: try r.text(count: count, "error text")))
        }
        guard r.remaining == 0 else {
            throw ProtocolError(.lengthMismatch, "\(r.remaining) bytes follow the \(header.kind) payload")
        }
        return Frame(requestID: header.requestID, step: header.step, message: message)
    }

    /// Decodes a frame held in an array.
    public static func decode(_ bytes: [UInt8]) throws -> Frame {
        try bytes.withUnsafeBytes { try decode(from: $0) }
    }

    /// The batch and input tensor of a `forward` (also the tail of a `chained_forward`).
    private static func decodeForward(_ r: inout WireReader) throws -> ForwardRequest {
        let (batch, rows) = try decodeBatch(&r)
        var tensors = try TensorTable.readDescriptors(&r, count: 1)
        let isTokens = tensors[0].dtype == .i32 && tensors[0].dims.count == 1
        let d = isTokens ? 0 : try tensors[0].hiddenWidth(rows: rows)
        if isTokens { try tensors[0].expect(.i32, [rows], "token tensor") }
        try TensorTable.readPayloads(&r, &tensors)
        if isTokens {
            let tokens = tensors[0].ints(r.bytes)
            try Validate.tokens(tokens, "token")
            return ForwardRequest(batch: batch, input: .tokens(tokens))
        }
        return ForwardRequest(batch: batch, input: .hidden(HiddenTensor(dModel: d, values: tensors[0].floats(r.bytes))))
    }

    private static func decodeHello(_ r: inout WireReader) throws -> Hello {
        let version = try r.u16("hello version")
        guard version >= 1 else { throw ProtocolError(.invalidValue, "hello protocol version 0") }
        let rawRole = try r.u8("hello role")
        guard let role = PeerRole(rawValue: rawRole) else { throw ProtocolError(.invalidValue, "unknown hello role \(rawRole)") }
        try r.reserved(1, "hello reserved field")
        let count = Int(try r.u32("hello name length"))
        guard count <= ProtocolLimits.maxTextBytes else {
            throw ProtocolError(.limitExceeded, "hello name of \(count) bytes exceeds \(ProtocolLimits.maxTextBytes)")
        }
        let fingerprint = try r.u64("hello proof")
        let nonce = try r.u64("hello nonce")
        let name = try r.text(count: count, "hello name")
        return Hello(protocolVersion: version, role: role, modelFingerprint: fingerprint, nonce: nonce, name: name)
    }

    private static func decodeShard(_ r: inout WireReader) throws -> ShardAssignment {
        let fingerprint = try r.u64("assignment fingerprint")
        let total = Int(try r.u32("total layers"))
        let first = Int(try r.u32("first layer"))
        let end = Int(try r.u32("end layer"))
        try Validate.layers(total: total, first: first, end: end)
        let flags = try r.u8("assignment flags")
        guard flags & ~3 == 0 else { throw ProtocolError(.reservedNotZero, "assignment flags \(flags) set undefined bits") }
        let embeds = flags & 1 != 0
        let readsOut = flags & 2 != 0
        try Validate.shardFlags(embeds: embeds, readsOut: readsOut, first: first, end: end, total: total)
        try r.reserved(3, "assignment reserved fields")
        let count = Int(try r.u32("URL length"))
        try r.reserved(4, "assignment reserved field")
        let url = try r.text(count: count, "next-stage URL")
        try Validate.url(hasNUL: url.utf8.contains(0), isEmpty: url.isEmpty, readsOut: readsOut)
        var assignment = ShardAssignment(modelFingerprint: fingerprint, totalLayers: total, layers: first..<end, nextStageURL: url)
        assignment.embeds = embeds
        assignment.readsOut = readsOut
        return assignment
    }

    /// Reads `k` runs and returns their positions; checks the run rules and that every
    /// position lies in `bounds` (throwing `outside`'s code otherwise).
    private static func decodeRuns(
        _ r: inout WireReader, runs k: Int, positions n: Int, id: UInt64, bounds: Range<Int>, outside: ProtocolErrorCode
    ) throws -> [Int] {
        guard (k == 0) == (n == 0), k <= n else {
            throw ProtocolError(.invalidValue, "sequence \(id): \(k) runs cannot hold \(n) positions")
        }
        try r.need(8 * k, "sequence \(id): \(k) runs")
        var positions: [Int] = []
        positions.reserveCapacity(n)
        var previousEnd = -1
        for _ in 0..<k {
            let first = Int(try r.u32("run start"))
            let count = Int(try r.u32("run count"))
            guard count >= 1 else { throw ProtocolError(.invalidValue, "sequence \(id): a run of 0 positions") }
            guard first != previousEnd else {
                throw ProtocolError(.invalidValue, "sequence \(id): the run at \(first) continues the previous run (not canonical)")
            }
            guard first >= bounds.lowerBound, first + count <= bounds.upperBound else {
                throw ProtocolError(
                    outside, "sequence \(id): read positions \(first)..<\(first + count) are outside \(bounds)")
            }
            guard positions.count + count <= n else {
                throw ProtocolError(.invalidValue, "sequence \(id): runs hold more than the \(n) positions declared")
            }
            positions.append(contentsOf: first..<(first + count))
            previousEnd = first + count
        }
        guard positions.count == n else {
            throw ProtocolError(.invalidValue, "sequence \(id): runs hold \(positions.count) positions, the record declares \(n)")
        }
        return positions
    }

    private static func sequenceCount(_ r: inout WireReader) throws -> Int {
        let count = Int(try r.u32("sequence count"))
        try Validate.sequenceCount(count)
        try r.reserved(4, "batch reserved field")
        return count
    }

    /// The batch of a forward or hidden-states frame and its computed row count.
    private static func decodeBatch(_ r: inout WireReader) throws -> ([SequenceForward], Int) {
        let count = try sequenceCount(&r)
        var batch: [SequenceForward] = []
        batch.reserveCapacity(count)
        var seen = Set<UInt64>()
        var rows = 0
        var reads = 0
        for _ in 0..<count {
            try r.need(48, "sequence record")
            let id = try r.u64("sequence id")
            let seed = try r.u64("seed")
            let length = Int(try r.u32("length"))
            let start = Int(try r.u32("computed start"))
            let end = Int(try r.u32("computed end"))
            let step = Int(try r.u32("sampling step"))
            let temperature = try r.f32("temperature")
            let rawCache = try r.u8("cache directive")
            let flags = try r.u8("sequence flags")
            let topK = Int(try r.u16("top k"))
            let cache = try Validate.record(
                id: id, length: length, start: start, end: end, temperature: temperature, cache: CacheDirective(rawValue: rawCache),
                rawCache: Int(rawCache), topK: topK)
            guard flags & ~1 == 0 else { throw ProtocolError(.reservedNotZero, "sequence \(id): flags \(flags) set undefined bits") }
            let k = Int(try r.u32("run count"))
            let n = Int(try r.u32("read count"))
            reads += n
            try Validate.readTotal(reads)
            let positions = try decodeRuns(&r, runs: k, positions: n, id: id, bounds: start..<end, outside: .readPositionOutside)
            guard seen.insert(id).inserted else {
                throw ProtocolError(.duplicateSequence, "sequence \(id) appears twice in one batch")
            }
            rows += end - start
            batch.append(
                SequenceForward(
                    sequenceID: id, length: length, computed: start..<end, cache: cache, readPositions: positions,
                    sampling: Sampling(temperature: temperature, seed: seed, step: step), wantsEOSProbability: flags & 1 != 0,
                    topK: topK))
        }
        return (batch, rows)
    }

    private static func decodeReadout(_ r: inout WireReader) throws -> ReadoutReply {
        let count = try sequenceCount(&r)
        struct Entry {
            var id: UInt64
            var positions: [Int]
            var topK: Int
            var eos: Bool
        }
        var entries: [Entry] = []
        entries.reserveCapacity(count)
        var seen = Set<UInt64>()
        var total = 0
        var eosTotal = 0
        var topTotal = 0
        for _ in 0..<count {
            try r.need(24, "readout record")
            let id = try r.u64("sequence id")
            let k = Int(try r.u32("run count"))
            let n = Int(try r.u32("position count"))
            let topK = Int(try r.u16("top k"))
            let flags = try r.u8("readout flags")
            try r.reserved(5, "readout reserved fields")
            guard flags & ~1 == 0 else { throw ProtocolError(.reservedNotZero, "sequence \(id): flags \(flags) set undefined bits") }
            guard topK <= ProtocolLimits.maxTopK else {
                throw ProtocolError(.limitExceeded, "sequence \(id): top k \(topK) exceeds \(ProtocolLimits.maxTopK)")
            }
            guard n > 0 || (topK == 0 && flags == 0) else {
                throw ProtocolError(.invalidValue, "sequence \(id): top k or EOS flag set on a readout without positions")
            }
            total += n
            try Validate.readTotal(total)
            let positions = try decodeRuns(
                &r, runs: k, positions: n, id: id, bounds: 0..<ProtocolLimits.maxCanvasLength, outside: .invalidRange)
            guard seen.insert(id).inserted else {
                throw ProtocolError(.duplicateSequence, "sequence \(id) appears twice in one readout")
            }
            if flags & 1 != 0 { eosTotal += n }
            topTotal += n * topK
            entries.append(Entry(id: id, positions: positions, topK: topK, eos: flags & 1 != 0))
        }
        var tensors = try TensorTable.readDescriptors(&r, count: 2 + (eosTotal > 0 ? 1 : 0) + (topTotal > 0 ? 2 : 0))
        try tensors[0].expect(.i32, [total], "token tensor")
        try tensors[1].expect(.f32, [total], "confidence tensor")
        var next = 2
        var eosTensor: TensorTable.Descriptor?
        var topTokenTensor: TensorTable.Descriptor?
        var topProbabilityTensor: TensorTable.Descriptor?
        if eosTotal > 0 {
            try tensors[next].expect(.f32, [eosTotal], "EOS tensor")
            next += 1
        }
        if topTotal > 0 {
            try tensors[next].expect(.i32, [topTotal], "top-token tensor")
            try tensors[next + 1].expect(.f32, [topTotal], "top-probability tensor")
        }
        try TensorTable.readPayloads(&r, &tensors)
        if eosTotal > 0 { eosTensor = tensors[2] }
        if topTotal > 0 {
            topTokenTensor = tensors[next]
            topProbabilityTensor = tensors[next + 1]
        }

        // Structure is valid: read the payloads.
        let bytes = r.bytes
        var sequences: [SequenceReadout] = []
        sequences.reserveCapacity(entries.count)
        var row = 0
        var eosRow = 0
        var topRow = 0
        for e in entries {
            let n = e.positions.count
            var readout = Readout(
                positions: e.positions, tokens: tensors[0].ints(bytes, from: row, count: n),
                confidences: tensors[1].floats(bytes, from: row, count: n))
            if e.eos, let eosTensor {
                readout.eosProbabilities = eosTensor.floats(bytes, from: eosRow, count: n)
                eosRow += n
            }
            if e.topK > 0, let topTokenTensor, let topProbabilityTensor {
                readout.topTokens = topTokenTensor.ints(bytes, from: topRow, count: n * e.topK)
                readout.topProbabilities = topProbabilityTensor.floats(bytes, from: topRow, count: n * e.topK)
                topRow += n * e.topK
            }
            row += n
            try Validate.tokens(readout.tokens, "sequence \(e.id): token")
            try Validate.tokens(readout.topTokens, "sequence \(e.id): top token")
            try Validate.probabilities(readout.confidences, "sequence \(e.id): confidence")
            try Validate.probabilities(readout.eosProbabilities, "sequence \(e.id): EOS probability")
            try Validate.probabilities(readout.topProbabilities, "sequence \(e.id): top probability")
            sequences.append(SequenceReadout(sequenceID: e.id, readout: readout))
        }
        return ReadoutReply(sequences: sequences)
    }
}

extension FrameHeader {
    /// Decodes and checks the 24-byte header of `bytes` (a whole frame): magic, version, kind,
    /// flags, the frame limit, and that the frame is exactly header + payload length long.
    public static func decode(from bytes: UnsafeRawBufferPointer) throws -> FrameHeader {
        var r = WireReader(bytes)
        guard bytes.count >= ProtocolLimits.headerBytes else {
            throw ProtocolError(.truncated, "a frame of \(bytes.count) bytes is shorter than the 24-byte header")
        }
        let magic = try r.u32("magic")
        guard magic == ProtocolLimits.magic else {
            throw ProtocolError(.badMagic, "magic 0x\(String(magic, radix: 16)) is not L2PD")
        }
        let version = try r.u16("version")
        guard version == ProtocolLimits.version else {
            throw ProtocolError(.unsupportedVersion, "frame version \(version); this side speaks \(ProtocolLimits.version)")
        }
        let rawKind = try r.u8("kind")
        guard let kind = MessageKind(rawValue: rawKind) else { throw ProtocolError(.unknownKind, "unknown message kind \(rawKind)") }
        let flags = try r.u8("flags")
        guard flags == 0 else { throw ProtocolError(.reservedNotZero, "header flags \(flags); version 1 defines none") }
        let requestID = try r.u64("request id")
        let step = try r.u32("step")
        let payloadLength = Int(try r.u32("payload length"))
        let frameLength = ProtocolLimits.headerBytes + payloadLength
        guard frameLength <= ProtocolLimits.maxFrameBytes else {
            throw ProtocolError(.frameTooLarge, "frame of \(frameLength) bytes exceeds \(ProtocolLimits.maxFrameBytes)")
        }
        guard bytes.count >= frameLength else {
            throw ProtocolError(.truncated, "payload length \(payloadLength) but only \(bytes.count - 24) bytes follow the header")
        }
        guard bytes.count == frameLength else {
            throw ProtocolError(.lengthMismatch, "frame of \(bytes.count) bytes, header says \(frameLength)")
        }
        return FrameHeader(kind: kind, flags: flags, requestID: requestID, step: step, payloadLength: payloadLength)
    }

    /// The request id and step to echo in an `error` answer: those of the header when its
    /// magic and version are valid, otherwise 0 (section 7).
    public static func replyIdentity(for bytes: UnsafeRawBufferPointer) -> (requestID: UInt64, step: UInt32) {
        guard bytes.count >= ProtocolLimits.headerBytes,
            UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt32.self)) == ProtocolLimits.magic,
            UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 4, as: UInt16.self)) == ProtocolLimits.version
        else { return (0, 0) }
        return (
            UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self)),
            UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 16, as: UInt32.self))
        )
    }
}

/// The tensor section: descriptors are read and checked first, then the payload extents
/// (bounds and zero padding) are checked; payload bytes are only read by the accessors.
enum TensorTable {
    struct Descriptor {
        var dtype: TensorDType
        var dims: [Int]
        var byteLength: Int
        /// Frame offset of the payload.
        var offset: Int
        var index: Int

        func expect(_ type: TensorDType, _ shape: [Int], _ what: String) throws {
            guard dtype == type, dims == shape else {
                throw ProtocolError(.badTensor, "\(what) is \(dtype) \(dims), expected \(type) \(shape)")
            }
        }

        /// Checks an F32 `[rows, D]` tensor and returns `D`.
        func hiddenWidth(rows: Int) throws -> Int {
            guard dtype == .f32, dims.count == 2, dims[0] == rows else {
                throw ProtocolError(.badTensor, "hidden tensor is \(dtype) \(dims), expected f32 [\(rows), d_model]")
            }
            try Validate.dModel(dims[1])
            return dims[1]
        }

        func floats(_ bytes: UnsafeRawBufferPointer) -> [Float] {
            floats(bytes, from: 0, count: byteLength / 4)
        }

        /// `count` f32 values starting at element `from`: one bulk copy on little-endian hosts.
        func floats(_ bytes: UnsafeRawBufferPointer, from: Int, count: Int) -> [Float] {
            guard count > 0, let base = bytes.baseAddress else { return [] }
            let source = base + offset + 4 * from
            return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                #if _endian(little)
                    UnsafeMutableRawPointer(buffer.baseAddress!).copyMemory(from: source, byteCount: 4 * count)
                #else
                    for i in 0..<count {
                        buffer[i] = Float(bitPattern: UInt32(littleEndian: source.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                    }
                #endif
                initialized = count
            }
        }

        func ints(_ bytes: UnsafeRawBufferPointer) -> [Int] {
            ints(bytes, from: 0, count: byteLength / 4)
        }

        func ints(_ bytes: UnsafeRawBufferPointer, from: Int, count: Int) -> [Int] {
            guard count > 0, let base = bytes.baseAddress else { return [] }
            let source = base + offset + 4 * from
            return [Int](unsafeUninitializedCapacity: count) { buffer, initialized in
                for i in 0..<count {
                    buffer[i] = Int(Int32(littleEndian: source.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)))
                }
                initialized = count
            }
        }
    }

    /// Reads and checks the section head and every descriptor, up to the first payload.
    static func readDescriptors(_ r: inout WireReader, count expected: Int) throws -> [Descriptor] {
        let count = Int(try r.u32("tensor count"))
        guard count == expected else { throw ProtocolError(.badTensor, "\(count) tensors, this frame carries \(expected)") }
        try r.reserved(4, "tensor section reserved field")
        var descriptors: [Descriptor] = []
        descriptors.reserveCapacity(count)
        for index in 0..<count {
            let rawType = try r.u8("tensor \(index) dtype")
            guard let dtype = TensorDType(rawValue: rawType) else {
                throw ProtocolError(.badTensor, "tensor \(index): unknown dtype \(rawType)")
            }
            let rank = Int(try r.u8("tensor \(index) rank"))
            guard rank >= 1, rank <= ProtocolLimits.maxRank else {
                throw ProtocolError(.badTensor, "tensor \(index): rank \(rank) is not in 1...\(ProtocolLimits.maxRank)")
            }
            try r.reserved(2, "tensor \(index) reserved field")
            let byteLength = Int(try r.u32("tensor \(index) byte length"))
            try Validate.tensorBytes(byteLength, "tensor \(index)")
            var dims: [Int] = []
            var elements = 1
            var overflow = false
            for _ in 0..<rank {
                let d = Int(try r.u32("tensor \(index) dim"))
                dims.append(d)
                let (product, o) = elements.multipliedReportingOverflow(by: d)
                overflow = overflow || o
                elements = product
            }
            let (bytes, o) = elements.multipliedReportingOverflow(by: dtype.byteWidth)
            guard !overflow, !o, bytes == byteLength else {
                throw ProtocolError(.badTensor, "tensor \(index): \(dtype) \(dims) needs other than its \(byteLength) bytes")
            }
            try r.padding(to: 8, "tensor \(index) descriptor")
            descriptors.append(Descriptor(dtype: dtype, dims: dims, byteLength: byteLength, offset: 0, index: index))
        }
        try r.padding(to: ProtocolLimits.payloadAlignment, "tensor descriptors")
        return descriptors
    }

    /// Records each payload's offset and checks it is present and followed by zero padding;
    /// the payload bytes themselves are not read.
    static func readPayloads(_ r: inout WireReader, _ descriptors: inout [Descriptor]) throws {
        for i in descriptors.indices {
            descriptors[i].offset = r.offset
            try r.skip(descriptors[i].byteLength, "tensor \(i) payload")
            try r.padding(to: ProtocolLimits.payloadAlignment, "tensor \(i) payload")
        }
    }
}
