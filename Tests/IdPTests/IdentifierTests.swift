import Foundation
import IdP
import NIOConcurrencyHelpers
import Testing

@Suite("Identifiers an operator types")
struct IdentifierTests {
    /// Hands out the queued byte strings in turn, then zeros.
    final class Scripted: RandomSource, @unchecked Sendable {
        private let queue: NIOLockedValueBox<[[UInt8]]>
        init(_ queue: [[UInt8]]) { self.queue = NIOLockedValueBox(queue) }
        func bytes(_ count: Int) -> [UInt8] {
            queue.withLockedValue { q in q.isEmpty ? [UInt8](repeating: 0, count: count) : q.removeFirst() }
        }
    }

    @Test func anIdentifierNeverStartsWithADashSoACommandLineTakesIt() {
        // 0xF8 is 62 << 2: base64url's "-" as the first character.
        let dash: [UInt8] = [0xF8] + [UInt8](repeating: 7, count: 15)
        #expect(SystemRandom().token(byteCount: 16).count == 22)
        let scripted = Scripted([dash, dash, [0x04] + [UInt8](repeating: 7, count: 15)])
        #expect(Scripted([dash]).token(byteCount: 16).hasPrefix("-"), "the draw itself can start with a dash")
        let id = scripted.identifier()
        #expect(id.hasPrefix("B") && id.count == 22, "drawn again until it does not: \(id)")
        for _ in 0..<2000 { #expect(!SystemRandom().identifier().hasPrefix("-")) }
    }
}
