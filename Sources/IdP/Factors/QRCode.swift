import Foundation

/// A QR Code symbol (ISO/IEC 18004:2015, Model 2), encoded in byte mode, for showing a TOTP enrollment URI
/// (`otpauth://…`) as an inline SVG: no external service, no script.
///
/// Encoding steps (clause numbers of the standard in brackets):
/// 1. the UTF-8 bytes become a bit stream: mode indicator, character count, data, terminator, padding (7.4);
/// 2. the data codewords are split into blocks, each gets Reed–Solomon error correction codewords, and the blocks
///    are interleaved (7.5, 7.6);
/// 3. function patterns (finders, separators, timing, alignment, format and version information) are drawn and
///    the codewords are placed in the two-module-wide zigzag (7.7);
/// 4. each of the 8 data masks is tried and the one with the lowest penalty score is kept (7.8), and its format
///    information is written (7.9).
public struct QRCode: Sendable {
    public enum ErrorCorrection: Sendable {
        case low, medium, quartile, high

        /// Row of the block tables below (L, M, Q, H).
        var index: Int {
            switch self { case .low: 0; case .medium: 1; case .quartile: 2; case .high: 3 }
        }

        /// The two error-correction bits of the format information (table 12): L=01, M=00, Q=11, H=10.
        var formatBits: Int {
            switch self { case .low: 1; case .medium: 0; case .quartile: 3; case .high: 2 }
        }
    }

    public enum EncodeError: Error, Sendable { case tooLong }

    /// Modules per side: 17 + 4 × version (21...177).
    public let size: Int
    public let version: Int
    /// The error-correction level and the data mask (0...7) the symbol was encoded with.
    let correction: ErrorCorrection
    let mask: Int
    /// Row-major, `true` = dark.
    private let modules: [Bool]

    /// Whether the module at column `x`, row `y` is dark (coordinates outside the symbol are light).
    public func isDark(x: Int, y: Int) -> Bool {
        guard x >= 0, y >= 0, x < size, y < size else { return false }
        return modules[y * size + x]
    }

    /// Byte mode (UTF-8), smallest version that fits (1...40), best of the 8 masks by the standard penalty rules.
    public static func encode(_ text: String, correction: ErrorCorrection = .medium) throws -> QRCode {
        let bytes = Array(text.utf8)
        // Byte mode: 4-bit mode indicator, 8-bit (versions 1–9) or 16-bit (10–40) count, 8 bits per byte.
        guard let version = (1...40).first(where: { v in
            4 + countBits(v) + 8 * bytes.count <= dataCodewords(v, correction) * 8
        }) else { throw EncodeError.tooLong }

        let codewords = interleave(dataStream(bytes, version, correction), version, correction)
        var matrix = Matrix(version: version)
        matrix.drawFunctionPatterns()
        matrix.place(codewords)

        var best = (mask: 0, penalty: Int.max, matrix: matrix)
        for mask in 0..<8 {
            var trial = matrix
            trial.applyMask(mask)
            trial.drawFormat(correction, mask: mask)
            let penalty = trial.penalty()
            if penalty < best.penalty { best = (mask, penalty, trial) }
        }
        return QRCode(size: matrix.size, version: version, correction: correction, mask: best.mask,
                      modules: best.matrix.dark)
    }

    /// An SVG fragment: 4-module quiet zone, white background, one black path of the dark modules with the
    /// horizontal runs of each row merged. Presentation attributes only (no `style`), so it passes a strict CSP.
    public func svg(label: String, scale: Int = 4) -> String {
        let side = size + 8
        let pixels = side * max(scale, 1)
        var d = ""
        for y in 0..<size {
            var x = 0
            while x < size {
                guard isDark(x: x, y: y) else { x += 1; continue }
                let start = x
                while x < size && isDark(x: x, y: y) { x += 1 }
                d += "M\(start + 4) \(y + 4)h\(x - start)v1h-\(x - start)z"
            }
        }
        return """
            <svg xmlns="http://www.w3.org/2000/svg" class="qr" viewBox="0 0 \(side) \(side)" \
            width="\(pixels)" height="\(pixels)" role="img" aria-label="\(Self.escape(label))" \
            shape-rendering="crispEdges"><rect width="\(side)" height="\(side)" fill="#fff"/>\
            <path d="\(d)" fill="#000"/></svg>
            """
    }

    private static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }

    // MARK: - Capacity tables (ISO/IEC 18004 table 9), indexed [level][version]; index 0 unused.

    /// Error correction codewords per block.
    private static let ecPerBlock: [[Int]] = [
        [0, 7, 10, 15, 20, 26, 18, 20, 24, 30, 18, 20, 24, 26, 30, 22, 24, 28, 30, 28, 28, 28, 28, 30, 30, 26, 28, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30],
        [0, 10, 16, 26, 18, 24, 16, 18, 22, 22, 26, 30, 22, 22, 24, 24, 28, 28, 26, 26, 26, 26, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28],
        [0, 13, 22, 18, 26, 18, 24, 18, 22, 20, 24, 28, 26, 24, 20, 30, 24, 28, 28, 26, 30, 28, 30, 30, 30, 30, 28, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30],
        [0, 17, 28, 22, 16, 22, 28, 26, 26, 24, 28, 24, 28, 22, 24, 24, 30, 28, 28, 26, 28, 30, 24, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30],
    ]
    /// Number of error correction blocks.
    private static let blocks: [[Int]] = [
        [0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 4, 4, 6, 6, 6, 6, 7, 8, 8, 9, 9, 10, 12, 12, 12, 13, 14, 15, 16, 17, 18, 19, 19, 20, 21, 22, 24, 25],
        [0, 1, 1, 1, 2, 2, 4, 4, 4, 5, 5, 5, 8, 9, 9, 10, 10, 11, 13, 14, 16, 17, 17, 18, 20, 21, 23, 25, 26, 28, 29, 31, 33, 35, 37, 38, 40, 43, 45, 47, 49],
        [0, 1, 1, 2, 2, 4, 4, 6, 6, 8, 8, 8, 10, 12, 16, 12, 17, 16, 18, 21, 20, 23, 23, 25, 27, 29, 34, 34, 35, 38, 40, 43, 45, 48, 51, 53, 56, 59, 62, 65, 68],
        [0, 1, 1, 2, 4, 4, 4, 5, 6, 8, 8, 11, 11, 16, 16, 18, 16, 19, 21, 25, 25, 25, 34, 30, 32, 35, 37, 40, 42, 45, 48, 51, 54, 57, 60, 63, 66, 70, 74, 77, 81],
    ]

    /// Bits of the byte-mode character count indicator (table 3).
    private static func countBits(_ version: Int) -> Int { version < 10 ? 8 : 16 }

    /// All codewords (data + EC) a version holds: the modules left after the function patterns, over 8.
    static func totalCodewords(_ version: Int) -> Int {
        var bits = (16 * version + 128) * version + 64
        if version >= 2 {
            let n = version / 7 + 2  // alignment patterns per row/column
            bits -= (25 * n - 10) * n - 55
            if version >= 7 { bits -= 36 }  // two 6×3 version information blocks
        }
        return bits / 8
    }

    static func dataCodewords(_ version: Int, _ level: ErrorCorrection) -> Int {
        totalCodewords(version) - ecPerBlock[level.index][version] * blocks[level.index][version]
    }

    /// Centre coordinates of the alignment patterns along each axis (annex E): 6, then evenly spaced up to size-7.
    static func alignmentPositions(_ version: Int) -> [Int] {
        guard version > 1 else { return [] }
        let n = version / 7 + 2
        let step = version == 32 ? 26 : (version * 4 + n * 2 + 1) / (n * 2 - 2) * 2
        var positions = [6]
        var pos = 17 + 4 * version - 7
        while positions.count < n {
            positions.insert(pos, at: 1)
            pos -= step
        }
        return positions
    }

    // MARK: - Data stream and error correction

    /// Mode indicator 0100 (byte), count, the bytes, up to 4 terminator zeros, zero bits to a byte boundary,
    /// then the pad codewords 0xEC 0x11 alternately up to the data capacity.
    private static func dataStream(_ bytes: [UInt8], _ version: Int, _ level: ErrorCorrection) -> [UInt8] {
        let capacity = dataCodewords(version, level)
        var bits: [Bool] = []
        func append(_ value: Int, _ count: Int) {
            for i in stride(from: count - 1, through: 0, by: -1) { bits.append((value >> i) & 1 == 1) }
        }
        append(0b0100, 4)
        append(bytes.count, countBits(version))
        for b in bytes { append(Int(b), 8) }
        append(0, min(4, capacity * 8 - bits.count))
        append(0, (8 - bits.count % 8) % 8)
        var out = stride(from: 0, to: bits.count, by: 8).map { start in
            bits[start..<start + 8].reduce(UInt8(0)) { $0 << 1 | ($1 ? 1 : 0) }
        }
        var pad: UInt8 = 0xEC
        while out.count < capacity {
            out.append(pad)
            pad = pad == 0xEC ? 0x11 : 0xEC
        }
        return out
    }

    /// Splits the data into blocks (the last `total % blocks` blocks take one more data codeword), appends each
    /// block's Reed–Solomon codewords, then interleaves: data codeword i of every block, then EC codeword i of every block.
    private static func interleave(_ data: [UInt8], _ version: Int, _ level: ErrorCorrection) -> [UInt8] {
        let count = blocks[level.index][version]
        let ecLength = ecPerBlock[level.index][version]
        let total = totalCodewords(version)
        let shortBlocks = count - total % count
        let shortData = total / count - ecLength
        let generator = rsGenerator(degree: ecLength)

        var dataBlocks: [[UInt8]] = []
        var ecBlocks: [[UInt8]] = []
        var offset = 0
        for i in 0..<count {
            let length = shortData + (i < shortBlocks ? 0 : 1)
            let block = Array(data[offset..<offset + length])
            offset += length
            dataBlocks.append(block)
            ecBlocks.append(rsRemainder(block, generator))
        }
        var out: [UInt8] = []
        for i in 0...shortData {
            for block in dataBlocks where i < block.count { out.append(block[i]) }
        }
        for i in 0..<ecLength {
            for block in ecBlocks { out.append(block[i]) }
        }
        return out
    }

    /// Product in GF(2⁸) with the QR reducing polynomial x⁸+x⁴+x³+x²+1 (0x11D).
    static func gfMultiply(_ a: UInt8, _ b: UInt8) -> UInt8 {
        var r = 0
        for i in stride(from: 7, through: 0, by: -1) {
            r = (r << 1) ^ ((r >> 7) * 0x11D)
            if (b >> i) & 1 == 1 { r ^= Int(a) }
        }
        return UInt8(r)
    }

    /// The generator polynomial (x − α⁰)(x − α¹)…(x − α^(degree−1)), α = 2: coefficients from the highest
    /// degree down, the leading 1 omitted.
    static func rsGenerator(degree: Int) -> [UInt8] {
        var coefficients = [UInt8](repeating: 0, count: degree)
        coefficients[degree - 1] = 1  // the polynomial 1
        var root: UInt8 = 1
        for _ in 0..<degree {
            // Multiply by (x − root); subtraction is XOR in GF(2⁸).
            for j in 0..<degree {
                coefficients[j] = gfMultiply(coefficients[j], root)
                if j + 1 < degree { coefficients[j] ^= coefficients[j + 1] }
            }
            root = gfMultiply(root, 2)
        }
        return coefficients
    }

    /// The EC codewords: the remainder of data(x)·x^degree divided by the generator (polynomial long division).
    static func rsRemainder(_ data: [UInt8], _ generator: [UInt8]) -> [UInt8] {
        var remainder = [UInt8](repeating: 0, count: generator.count)
        for byte in data {
            let factor = byte ^ remainder.removeFirst()
            remainder.append(0)
            for i in generator.indices { remainder[i] ^= gfMultiply(generator[i], factor) }
        }
        return remainder
    }

    /// BCH(15,5) format information: 2 EC-level bits + 3 mask bits, 10 check bits (generator 0x537), XOR 0x5412.
    static func formatInformation(_ level: ErrorCorrection, mask: Int) -> Int {
        let data = level.formatBits << 3 | mask
        var r = data
        for _ in 0..<10 { r = (r << 1) ^ ((r >> 9) * 0x537) }
        return (data << 10 | r) ^ 0x5412
    }

    /// BCH(18,6) version information: 6 version bits, 12 check bits (generator 0x1F25).
    static func versionInformation(_ version: Int) -> Int {
        var r = version
        for _ in 0..<12 { r = (r << 1) ^ ((r >> 11) * 0x1F25) }
        return version << 12 | r
    }

    // MARK: - The module matrix

    private struct Matrix {
        let version: Int
        let size: Int
        var dark: [Bool]
        /// Function modules: not data, never masked.
        var function: [Bool]

        init(version: Int) {
            self.version = version
            size = 17 + 4 * version
            dark = Array(repeating: false, count: size * size)
            function = dark
        }

        func isDark(_ x: Int, _ y: Int) -> Bool { dark[y * size + x] }

        mutating func setFunction(_ x: Int, _ y: Int, _ isDark: Bool) {
            dark[y * size + x] = isDark
            function[y * size + x] = true
        }

        mutating func drawFunctionPatterns() {
            // Timing patterns: row 6 and column 6 alternate, dark on even coordinates.
            for i in 0..<size {
                setFunction(6, i, i % 2 == 0)
                setFunction(i, 6, i % 2 == 0)
            }
            // Finder patterns (7×7 rings 1:1:3:1:1) with their light separators, centred 3 modules in.
            for (cx, cy) in [(3, 3), (size - 4, 3), (3, size - 4)] {
                for dy in -4...4 {
                    for dx in -4...4 where (0..<size).contains(cx + dx) && (0..<size).contains(cy + dy) {
                        let ring = max(abs(dx), abs(dy))
                        setFunction(cx + dx, cy + dy, ring != 2 && ring != 4)
                    }
                }
            }
            // Alignment patterns (5×5), at every pair of positions except the three finder corners.
            let positions = QRCode.alignmentPositions(version)
            let last = positions.count - 1
            for (i, ax) in positions.enumerated() {
                for (j, ay) in positions.enumerated() {
                    if (i == 0 && j == 0) || (i == 0 && j == last) || (i == last && j == 0) { continue }
                    for dy in -2...2 {
                        for dx in -2...2 { setFunction(ax + dx, ay + dy, max(abs(dx), abs(dy)) != 1) }
                    }
                }
            }
            drawFormat(.medium, mask: 0)  // reserves the format areas; rewritten once the mask is chosen
            // Version information (versions 7+): 6×3 block above the bottom-left finder, 3×6 left of the top-right.
            if version >= 7 {
                let bits = QRCode.versionInformation(version)
                for i in 0..<18 {
                    let bit = (bits >> i) & 1 == 1
                    let a = size - 11 + i % 3
                    let b = i / 3
                    setFunction(a, b, bit)
                    setFunction(b, a, bit)
                }
            }
        }

        /// The 15 format bits, twice: around the top-left finder, and split between the other two; plus the
        /// dark module at (8, size − 8).
        mutating func drawFormat(_ level: ErrorCorrection, mask: Int) {
            let bits = QRCode.formatInformation(level, mask: mask)
            func bit(_ i: Int) -> Bool { (bits >> i) & 1 == 1 }
            for i in 0...5 { setFunction(8, i, bit(i)) }
            setFunction(8, 7, bit(6))
            setFunction(8, 8, bit(7))
            setFunction(7, 8, bit(8))
            for i in 9..<15 { setFunction(14 - i, 8, bit(i)) }
            for i in 0..<8 { setFunction(size - 1 - i, 8, bit(i)) }
            for i in 8..<15 { setFunction(8, size - 15 + i, bit(i)) }
            setFunction(8, size - 8, true)
        }

        /// Codeword bits, most significant first, in two-module columns from the right edge, alternately
        /// upwards and downwards, skipping function modules and the vertical timing column. Remainder bits stay 0.
        mutating func place(_ codewords: [UInt8]) {
            var index = 0
            var right = size - 1
            while right >= 1 {
                if right == 6 { right = 5 }
                let upward = (right + 1) & 2 == 0
                for vertical in 0..<size {
                    let y = upward ? size - 1 - vertical : vertical
                    for x in [right, right - 1] where !function[y * size + x] && index < codewords.count * 8 {
                        dark[y * size + x] = (codewords[index >> 3] >> (7 - (index & 7))) & 1 == 1
                        index += 1
                    }
                }
                right -= 2
            }
        }

        /// Inverts the data modules where the mask condition (table 10; i = row = y, j = column = x) holds.
        mutating func applyMask(_ mask: Int) {
            for y in 0..<size {
                for x in 0..<size where !function[y * size + x] {
                    let invert = switch mask {
                    case 0: (x + y) % 2 == 0
                    case 1: y % 2 == 0
                    case 2: x % 3 == 0
                    case 3: (x + y) % 3 == 0
                    case 4: (x / 3 + y / 2) % 2 == 0
                    case 5: (x * y) % 2 + (x * y) % 3 == 0
                    case 6: ((x * y) % 2 + (x * y) % 3) % 2 == 0
                    default: ((x + y) % 2 + (x * y) % 3) % 2 == 0
                    }
                    if invert { dark[y * size + x].toggle() }
                }
            }
        }

        /// The penalty score of 7.8.3: N1 = 3 (runs), N2 = 3 (2×2 blocks), N3 = 40 (finder-like), N4 = 10 (balance).
        func penalty() -> Int {
            var score = 0
            for line in 0..<size {
                let row = (0..<size).map { isDark($0, line) }
                let column = (0..<size).map { isDark(line, $0) }
                score += Self.runPenalty(row) + Self.runPenalty(column)
                score += Self.finderPenalty(row) + Self.finderPenalty(column)
            }
            for y in 0..<size - 1 {
                for x in 0..<size - 1 {
                    let c = isDark(x, y)
                    if c == isDark(x + 1, y) && c == isDark(x, y + 1) && c == isDark(x + 1, y + 1) { score += 3 }
                }
            }
            // Rule 4: 10 points for every full 5% the dark proportion deviates from 50%.
            let darkCount = dark.reduce(0) { $0 + ($1 ? 1 : 0) }
            score += 10 * (abs(darkCount * 20 - dark.count * 10) / dark.count)
            return score
        }

        /// Rule 1: each run of 5 + i same-coloured modules in a line scores 3 + i.
        static func runPenalty(_ line: [Bool]) -> Int {
            var score = 0
            var run = 1
            for i in 1..<line.count {
                if line[i] == line[i - 1] {
                    run += 1
                } else {
                    if run >= 5 { score += run - 2 }
                    run = 1
                }
            }
            if run >= 5 { score += run - 2 }
            return score
        }

        /// Rule 3: dark-light-dark×3-light-dark (1:1:3:1:1) with 4 light modules before or after (the quiet zone
        /// counts as light) scores 40 for each light side.
        static func finderPenalty(_ line: [Bool]) -> Int {
            let padded = [false, false, false, false] + line + [false, false, false, false]
            let core = [true, false, true, true, true, false, true]
            var score = 0
            for start in 4...(padded.count - 11) where Array(padded[start..<start + 7]) == core {
                if !padded[start - 4..<start].contains(true) { score += 40 }
                if !padded[start + 7..<start + 11].contains(true) { score += 40 }
            }
            return score
        }
    }
}
