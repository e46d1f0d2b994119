import Foundation
@testable import Storage
import Testing

@Suite("Row helpers")
struct RowHelperTests {
    @Test func plainStringArraysParseWithoutTheDecoderAndEverythingElseFallsBack() throws {
        #expect(simpleStringArray("[]") == [])
        #expect(simpleStringArray(#"["dev"]"#) == ["dev"])
        #expect(simpleStringArray(#"["dev","ops","CN=Ops ✓"]"#) == ["dev", "ops", "CN=Ops ✓"])
        #expect(simpleStringArray(#"["",""]"#) == ["", ""])
        // Escapes, whitespace, junk: not for the fast path (nil → the full JSON decoder decides).
        for other in [#"["a\"b"]"#, #"["a\/b"]"#, #"["a", "b"]"#, #"["a",]"#, #"["a""b"]"#, #"["a"#, "[", "", "null", #"{"a":"b"}"#, #"["a"]x"#] {
            #expect(simpleStringArray(other) == nil, "\(other)")
        }
        // Round trip with the writer, including names the fast path must leave to the decoder.
        for list in [["dev"], ["a/b", #"quo"te"#, "back\\slash", "tab\t"], []] {
            let text = json(list)
            let parsed = try simpleStringArray(text) ?? JSONDecoder().decode([String].self, from: Data(text.utf8))
            #expect(parsed == list)
        }
    }
}
