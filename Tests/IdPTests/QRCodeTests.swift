import XCTest

@testable import IdP

/// Structural checks of the QR encoder. End-to-end decoding with an independent decoder (zbar) is in
/// Tests/blackbox/qr_decode.py.
final class QRCodeTests: XCTestCase {
    private let uri = "otpauth://totp/portal.example.com:alice?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
        + "&issuer=portal.example.com&algorithm=SHA1&digits=6"

    /// "hello" at level M, as encoded by an independent implementation (Nayuki's qrcodegen, same mask 0).
    func testKnownSymbolMatchesReference() throws {
        let expected = [
            "#######..##...#######", "#.....#.##....#.....#", "#.###.#..#.##.#.###.#", "#.###.#...##..#.###.#",
            "#.###.#.##..#.#.###.#", "#.....#.....#.#.....#", "#######.#.#.#.#######", "..........###........",
            "#.#.#.#..#.#....#..#.", "..#.##....#...#....##", ".#.#..#.###.#...#####", "##..#.........#....#.",
            ".##.#.##..#.#.#.#....", "........####.#.#..###", "#######...##.###..###", "#.....#...####.##....",
            "#.###.#.#.##.###...##", "#.###.#..#....##..##.", "#.###.#.###.#...#.#.#", "#.....#..#....#.#..#.",
            "#######.###.#.##...##",
        ]
        let qr = try QRCode.encode("hello", correction: .medium)
        XCTAssertEqual(qr.version, 1)
        XCTAssertEqual(qr.mask, 0)
        let rows = (0..<qr.size).map { y in String((0..<qr.size).map { x in qr.isDark(x: x, y: y) ? "#" : "." }) }
        XCTAssertEqual(rows, expected)
    }

    /// ISO/IEC 18004 annex I: "01234567" at 1-M; its 16 data codewords give these 10 EC codewords.
    func testReedSolomonMatchesTheStandardsExample() {
        let data: [UInt8] = [0x10, 0x20, 0x0C, 0x56, 0x61, 0x80, 0xEC, 0x11, 0xEC, 0x11, 0xEC, 0x11, 0xEC, 0x11, 0xEC, 0x11]
        let ec = QRCode.rsRemainder(data, QRCode.rsGenerator(degree: 10))
        XCTAssertEqual(ec, [0xA5, 0x24, 0xD4, 0xC1, 0xED, 0x36, 0xC7, 0x87, 0x2C, 0x55])
    }

    func testSmallestVersionThatFits() throws {
        // Byte-mode capacities at level M: version 1 holds 14 bytes, version 2 26, version 40 2331.
        XCTAssertEqual(try QRCode.encode(String(repeating: "a", count: 14)).version, 1)
        XCTAssertEqual(try QRCode.encode(String(repeating: "a", count: 15)).version, 2)
        XCTAssertEqual(try QRCode.encode(uri).version, 8)  // 129 bytes
        XCTAssertEqual(try QRCode.encode(uri, correction: .low).version, 6)
        XCTAssertEqual(try QRCode.encode("é").version, 1)  // counted in UTF-8 bytes
        XCTAssertThrowsError(try QRCode.encode(String(repeating: "a", count: 2332))) { error in
            guard case QRCode.EncodeError.tooLong = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try QRCode.encode(String(repeating: "a", count: 3000), correction: .low)) { error in
            guard case QRCode.EncodeError.tooLong = error else { return XCTFail("\(error)") }
        }
    }

    func testFunctionPatterns() throws {
        for text in ["hi", uri] {
            let qr = try QRCode.encode(text)
            XCTAssertEqual(qr.size, 17 + 4 * qr.version)
            // Finder patterns (7×7: dark ring, light ring, dark 3×3) with light separators, at three corners.
            for (left, top) in [(0, 0), (qr.size - 7, 0), (0, qr.size - 7)] {
                for dy in -1...7 {
                    for dx in -1...7 {
                        let (x, y) = (left + dx, top + dy)
                        guard (0..<qr.size).contains(x), (0..<qr.size).contains(y) else { continue }
                        let ring = max(abs(dx - 3), abs(dy - 3))
                        XCTAssertEqual(qr.isDark(x: x, y: y), ring != 2 && ring != 4, "finder at (\(left),\(top)): (\(x),\(y))")
                    }
                }
            }
            // No finder at the fourth corner.
            XCTAssertFalse((0..<7).allSatisfy { qr.isDark(x: qr.size - 1 - $0, y: qr.size - 1) })
            // Timing patterns alternate between the finders, dark on even coordinates.
            for i in 8..<(qr.size - 8) {
                XCTAssertEqual(qr.isDark(x: i, y: 6), i % 2 == 0, "row timing at \(i)")
                XCTAssertEqual(qr.isDark(x: 6, y: i), i % 2 == 0, "column timing at \(i)")
            }
            XCTAssertTrue(qr.isDark(x: 8, y: qr.size - 8), "the dark module")
            XCTAssertFalse(qr.isDark(x: -1, y: 0))
            XCTAssertFalse(qr.isDark(x: 0, y: qr.size))
        }
    }

    func testFormatInformationDecodesToTheLevelAndMask() throws {
        let levels: [(QRCode.ErrorCorrection, Int)] = [(.low, 0b01), (.medium, 0b00), (.quartile, 0b11), (.high, 0b10)]
        for (level, bits) in levels {
            let qr = try QRCode.encode(uri, correction: level)
            let s = qr.size
            // Copy 1 around the top-left finder, copy 2 split between the other two; bit 0 first.
            var first: [(Int, Int)] = (0...5).map { (8, $0) } + [(8, 7), (8, 8), (7, 8)]
            first += (9..<15).map { (14 - $0, 8) }
            let second: [(Int, Int)] = (0..<8).map { (s - 1 - $0, 8) } + (8..<15).map { (8, s - 15 + $0) }
            let read = { (cells: [(Int, Int)]) in
                cells.enumerated().reduce(0) { $0 | (qr.isDark(x: $1.element.0, y: $1.element.1) ? 1 << $1.offset : 0) }
            }
            let word = read(first)
            XCTAssertEqual(word, read(second), "the two copies agree")
            // BCH(15,5) decode: the unique 5-bit value whose codeword (generator 0x537, XOR 0x5412) it is.
            let decoded = (0..<32).filter { data in
                var r = data << 10
                for i in stride(from: 14, through: 10, by: -1) where r >> i & 1 == 1 { r ^= 0x537 << (i - 10) }
                return (data << 10 | r) ^ 0x5412 == word
            }
            XCTAssertEqual(decoded.count, 1, "format information \(String(word, radix: 2)) is a valid codeword")
            XCTAssertEqual(decoded.first.map { $0 >> 3 }, bits, "EC level \(level)")
            XCTAssertEqual(decoded.first.map { $0 & 7 }, qr.mask)
        }
    }

    func testVersionInformationFromVersion7() throws {
        let qr = try QRCode.encode(String(repeating: "v", count: 110))  // 110 bytes at M: version 7 (6 holds 106)
        XCTAssertEqual(qr.version, 7)
        XCTAssertEqual(qr.size, 45)
        // 6×3 block left of the top-right finder and its transpose above the bottom-left one, bit 0 first.
        var upper = 0
        var lower = 0
        for i in 0..<18 {
            if qr.isDark(x: qr.size - 11 + i % 3, y: i / 3) { upper |= 1 << i }
            if qr.isDark(x: i / 3, y: qr.size - 11 + i % 3) { lower |= 1 << i }
        }
        XCTAssertEqual(upper, lower)
        XCTAssertEqual(upper, 0x07C94)  // the standard's table D.1 entry for version 7
    }

    func testSVG() throws {
        let qr = try QRCode.encode("hello")
        let svg = qr.svg(label: #"Scan <me> & "enrol" 'now'"#, scale: 3)
        XCTAssertTrue(svg.hasPrefix("<svg "))
        XCTAssertTrue(svg.hasSuffix("</svg>"))
        XCTAssertFalse(svg.contains("style"), "strict CSP: presentation attributes only")
        XCTAssertFalse(svg.contains("<script"))
        XCTAssertTrue(svg.contains(#"xmlns="http://www.w3.org/2000/svg""#))
        XCTAssertTrue(svg.contains(#"class="qr""#))
        XCTAssertTrue(svg.contains(#"role="img""#))
        XCTAssertTrue(svg.contains(#"aria-label="Scan &lt;me&gt; &amp; &quot;enrol&quot; &#39;now&#39;""#))
        XCTAssertTrue(svg.contains(#"viewBox="0 0 29 29""#))  // 21 + 2 × 4 quiet zone
        XCTAssertTrue(svg.contains(#"width="87" height="87""#))
        XCTAssertTrue(svg.contains(#"shape-rendering="crispEdges""#))
        XCTAssertTrue(svg.contains(##"fill="#fff""##))
        XCTAssertEqual(svg.components(separatedBy: "<path").count, 2, "one path")
        XCTAssertTrue(svg.contains(##"fill="#000""##))
        // The path covers exactly the dark modules, offset by the quiet zone.
        guard let d = svg.split(separator: "d=\"").last?.split(separator: "\"").first else { return XCTFail("no path data") }
        var dark = Set<Int>()
        for run in d.split(separator: "z") {
            let numbers = run.split(whereSeparator: { "Mhv ".contains($0) }).compactMap { Int($0) }
            XCTAssertEqual(numbers.count, 5, String(run))
            for x in numbers[0]..<(numbers[0] + numbers[2]) { dark.insert((numbers[1] - 4) * qr.size + x - 4) }
        }
        let expected = (0..<qr.size * qr.size).filter { qr.isDark(x: $0 % qr.size, y: $0 / qr.size) }
        XCTAssertEqual(dark, Set(expected))
    }
}
