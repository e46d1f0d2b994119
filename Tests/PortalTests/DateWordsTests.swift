import Foundation
import Testing
@testable import Portal

/// The pages' UTC dates: the same text a DateFormatter gives, for any instant.
@Suite struct DateWords {
    @Test func datesReadAsAFormatterWouldWriteThem() {
        let f = DateFormatter()
        f.dateFormat = "yyyy-MM-dd HH:mm"
        f.timeZone = TimeZone(identifier: "UTC")
        f.locale = Locale(identifier: "en_US_POSIX")
        var instants: [TimeInterval] = [0, 59.999, 60, 1_764_560_460.5, 1_798_761_599.9, 4_102_444_800, -1, -86_400.5]
        // Whole milliseconds: the formatter rounds an instant to the millisecond first (…:59.9996 → the
        // next minute), the pages truncate; either is fine for a page, and only this difference is not.
        for _ in 0..<500 { instants.append((Double.random(in: -2_000_000_000...4_000_000_000) * 1000).rounded(.down) / 1000) }
        for t in instants {
            let d = Date(timeIntervalSince1970: t)
            #expect(AdminPages.date(d) == f.string(from: d) + " UTC", "\(t)")
        }
        #expect(AdminPages.date(nil) == "never")
    }
}
