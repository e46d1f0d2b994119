/// A strict CBOR decoder (RFC 8949) for exactly what WebAuthn carries: attestation objects,
/// COSE keys and authenticator extensions. Accepted: unsigned and negative integers (up to 64
/// bits), byte strings, UTF-8 text strings, arrays, maps keyed by integers or text (no duplicate
/// keys), true, false, null. Refused: indefinite lengths, tags, floats, undefined and other simple
/// values, nesting deeper than `maxDepth`, collections of more than `maxItems` items, lengths
/// beyond the remaining input (checked before anything is allocated), and — in `decode` — bytes
/// after the item. Non-shortest length encodings are accepted.
///
/// The decoder never traps on input: arithmetic is checked, recursion is bounded by `maxDepth`,
/// and every length is compared with what is left before it is used.
public indirect enum CBOR: Sendable, Equatable {
    /// Major type 0: the value itself.
    case unsigned(UInt64)
    /// Major type 1: the encoded argument `n`; the value is `-1 - n`.
    case negative(UInt64)
    case bytes([UInt8])
    case text(String)
    case array([CBOR])
    /// Entries in encoded order (keys are `.unsigned`, `.negative` or `.text`, all distinct).
    case map([Entry])
    case bool(Bool)
    case null

    public struct Entry: Sendable, Equatable {
        public let key: CBOR
        public let value: CBOR
        public init(key: CBOR, value: CBOR) {
            self.key = key
            self.value = value
        }
    }

    public static let maxDepth = 16
    public static let maxItems = 256

    // MARK: Accessors

    /// The value under an integer key, if this is a map holding one.
    public subscript(key: Int) -> CBOR? {
        guard case .map(let entries) = self else { return nil }
        for entry in entries where entry.key.int == key { return entry.value }
        return nil
    }

    /// The value under a text key (compared by UTF-8 bytes, not by Unicode equivalence).
    public subscript(key: String) -> CBOR? {
        guard case .map(let entries) = self else { return nil }
        for entry in entries {
            if case .text(let k) = entry.key, k.utf8.elementsEqual(key.utf8) { return entry.value }
        }
        return nil
    }

    public var bytes: [UInt8]? {
        if case .bytes(let b) = self { return b }
        return nil
    }

    /// The integer value, or nil when this is not an integer or it does not fit in Int64.
    public var int: Int? {
        switch self {
        case .unsigned(let u):
            return u <= UInt64(Int64.max) ? Int(Int64(u)) : nil
        case .negative(let n):
            // -1 - n >= Int64.min exactly when n <= Int64.max.
            return n <= UInt64(Int64.max) ? Int(-1 - Int64(n)) : nil
        default:
            return nil
        }
    }

    public var text: String? {
        if case .text(let s) = self { return s }
        return nil
    }

    public var map: [Entry]? {
        if case .map(let m) = self { return m }
        return nil
    }

    public var array: [CBOR]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var bool: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    // MARK: Decoding

    /// Decodes one item that must span the whole input.
    public static func decode(_ bytes: [UInt8]) throws -> CBOR {
        let (item, consumed) = try decodePrefix(bytes[...])
        guard consumed == bytes.count else { throw CBORError.trailingBytes }
        return item
    }

    /// Decodes the one item at the start of `bytes`; `consumed` is how many bytes it took.
    /// Bytes after it are left alone (authenticator data puts extensions after the credential key).
    public static func decodePrefix(_ bytes: ArraySlice<UInt8>) throws -> (CBOR, consumed: Int) {
        var reader = CBORReader(bytes)
        let item = try reader.item(depth: 1)
        return (item, reader.position - bytes.startIndex)
    }
}

public enum CBORError: Error, Sendable, Equatable, CustomStringConvertible {
    case unexpectedEnd
    case trailingBytes
    case reservedAdditionalInformation
    case indefiniteLength
    case tagNotSupported
    case floatNotSupported
    case simpleValueNotSupported
    case nestedTooDeeply
    case tooManyItems
    case lengthExceedsInput
    case invalidUTF8
    case invalidMapKey
    case duplicateMapKey

    public var description: String {
        switch self {
        case .unexpectedEnd: "CBOR: input ends inside an item"
        case .trailingBytes: "CBOR: bytes after the item"
        case .reservedAdditionalInformation: "CBOR: reserved additional information (28–30)"
        case .indefiniteLength: "CBOR: indefinite lengths are not accepted"
        case .tagNotSupported: "CBOR: tags are not accepted"
        case .floatNotSupported: "CBOR: floating-point values are not accepted"
        case .simpleValueNotSupported: "CBOR: simple value other than true, false, null"
        case .nestedTooDeeply: "CBOR: nested more than \(CBOR.maxDepth) levels"
        case .tooManyItems: "CBOR: collection of more than \(CBOR.maxItems) items"
        case .lengthExceedsInput: "CBOR: declared length larger than the remaining input"
        case .invalidUTF8: "CBOR: text string is not valid UTF-8"
        case .invalidMapKey: "CBOR: map key is neither an integer nor text"
        case .duplicateMapKey: "CBOR: duplicate map key"
        }
    }
}

/// Cursor over the input. `position` is an index of the slice (slices keep their base's indices).
private struct CBORReader {
    let input: ArraySlice<UInt8>
    var position: Int

    init(_ input: ArraySlice<UInt8>) {
        self.input = input
        self.position = input.startIndex
    }

    var remaining: Int { input.endIndex - position }

    mutating func byte() throws -> UInt8 {
        guard position < input.endIndex else { throw CBORError.unexpectedEnd }
        defer { position += 1 }
        return input[position]
    }

    /// The big-endian unsigned integer in the next `count` bytes (count ≤ 8).
    mutating func uint(_ count: Int) throws -> UInt64 {
        guard remaining >= count else { throw CBORError.unexpectedEnd }
        var value: UInt64 = 0
        for _ in 0..<count { value = value << 8 | UInt64(input[position]); position += 1 }
        return value
    }

    /// The argument of a head whose additional information is `info` (0…27 only).
    mutating func argument(_ info: UInt8) throws -> UInt64 {
        switch info {
        case 0..<24: return UInt64(info)
        case 24: return try uint(1)
        case 25: return try uint(2)
        case 26: return try uint(4)
        case 27: return try uint(8)
        case 31: throw CBORError.indefiniteLength
        default: throw CBORError.reservedAdditionalInformation
        }
    }

    /// A declared byte length, checked against the remaining input before any allocation.
    mutating func length(_ info: UInt8) throws -> Int {
        let declared = try argument(info)
        guard declared <= UInt64(remaining) else { throw CBORError.lengthExceedsInput }
        return Int(declared)
    }

    /// A declared item count: at most `maxItems`, and (every item taking at least one byte,
    /// two per map entry) no more than what the remaining input could hold.
    mutating func count(_ info: UInt8, bytesPerItem: Int) throws -> Int {
        let declared = try argument(info)
        guard declared <= UInt64(CBOR.maxItems) else { throw CBORError.tooManyItems }
        let n = Int(declared)
        guard n * bytesPerItem <= remaining else { throw CBORError.lengthExceedsInput }
        return n
    }

    mutating func item(depth: Int) throws -> CBOR {
        guard depth <= CBOR.maxDepth else { throw CBORError.nestedTooDeeply }
        let head = try byte()
        let major = head >> 5
        let info = head & 0x1f
        switch major {
        case 0:
            return .unsigned(try argument(info))
        case 1:
            return .negative(try argument(info))
        case 2:
            let n = try length(info)
            defer { position += n }
            return .bytes(Array(input[position..<(position + n)]))
        case 3:
            let n = try length(info)
            defer { position += n }
            guard let s = String(validating: input[position..<(position + n)], as: UTF8.self) else {
                throw CBORError.invalidUTF8
            }
            return .text(s)
        case 4:
            let n = try count(info, bytesPerItem: 1)
            var items: [CBOR] = []
            items.reserveCapacity(n)
            for _ in 0..<n { items.append(try item(depth: depth + 1)) }
            return .array(items)
        case 5:
            let n = try count(info, bytesPerItem: 2)
            var entries: [CBOR.Entry] = []
            entries.reserveCapacity(n)
            var seen = Set<MapKey>()
            for _ in 0..<n {
                let key = try item(depth: depth + 1)
                let mapKey: MapKey
                switch key {
                case .unsigned(let u): mapKey = .unsigned(u)
                case .negative(let v): mapKey = .negative(v)
                case .text(let s): mapKey = .text(Array(s.utf8))
                default: throw CBORError.invalidMapKey
                }
                guard seen.insert(mapKey).inserted else { throw CBORError.duplicateMapKey }
                entries.append(CBOR.Entry(key: key, value: try item(depth: depth + 1)))
            }
            return .map(entries)
        case 6:
            throw CBORError.tagNotSupported
        default:  // 7
            switch info {
            case 20: return .bool(false)
            case 21: return .bool(true)
            case 22: return .null
            case 25, 26, 27: throw CBORError.floatNotSupported
            case 28, 29, 30: throw CBORError.reservedAdditionalInformation
            case 31: throw CBORError.indefiniteLength  // a "break" outside an indefinite item
            default: throw CBORError.simpleValueNotSupported  // 0…19, 23 (undefined), 24
            }
        }
    }
}

/// Map keys as their encoded identity (text by its UTF-8 bytes, so canonically equivalent but
/// differently encoded strings are distinct keys, as CBOR defines them).
private enum MapKey: Hashable {
    case unsigned(UInt64)
    case negative(UInt64)
    case text([UInt8])
}
