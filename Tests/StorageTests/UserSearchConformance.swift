import Foundation
import IdP
import Testing

@Suite("Storage conformance: user search and pages")
struct UserSearchConformance {
    @Test(arguments: Backends.all)
    func searchMatchesNameEmailAndGroupsCaseInsensitivelyInPages(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            for i in 0..<25 { try await store.createUser(Fixture.user(username: String(format: "user%02d", i), groups: i % 5 == 0 ? ["Platform-Ops"] : ["dev"])) }
            var odd = Fixture.user(username: "odd_one")
            odd.displayName = "Zoë 100% Sure"; odd.email = "zoe@corp.example"
            try await store.createUser(odd)

            let all = try await store.searchUsers("", limit: 10, offset: 0)
            #expect(all.total == 26 && all.users.map(\.username) == ["odd_one"] + (0..<9).map { String(format: "user%02d", $0) })
            let last = try await store.searchUsers("", limit: 10, offset: 20)
            #expect(last.users.map(\.username) == (19..<25).map { "user\($0)" })
            #expect(try await store.searchUsers("", limit: 10, offset: 30).users.isEmpty)

            #expect(try await store.searchUsers("platform-ops", limit: 50, offset: 0).total == 5, "a group, whatever its case")
            #expect(try await store.searchUsers("USER1", limit: 50, offset: 0).users.map(\.username) == (10..<20).map { "user\($0)" })
            #expect(try await store.searchUsers("corp.example", limit: 50, offset: 0).users.map(\.username) == ["odd_one"], "email")
            #expect(try await store.searchUsers("zoë", limit: 50, offset: 0).users.map(\.username) == ["odd_one"], "display name")
            // What a person types is literal: % and _ are not wildcards.
            #expect(try await store.searchUsers("100%", limit: 50, offset: 0).users.map(\.username) == ["odd_one"])
            #expect(try await store.searchUsers("%", limit: 50, offset: 0).total == 1)
            #expect(try await store.searchUsers("d_o", limit: 50, offset: 0).total == 1, "only odd_one has d_o")
            #expect(try await store.searchUsers("' OR 1=1 --", limit: 50, offset: 0).total == 0)
            // JSON's own characters do not match every group list; capitals beyond ASCII match as typed.
            #expect(try await store.searchUsers("\",\"", limit: 50, offset: 0).total == 0)
            #expect(try await store.searchUsers("[", limit: 50, offset: 0).total == 0)
            var polish = Fixture.user(username: "lnowak")
            polish.displayName = "Łukasz Nowak"
            try await store.createUser(polish)
            #expect(try await store.searchUsers("Łukasz", limit: 50, offset: 0).users.map(\.username) == ["lnowak"])
        }
    }
}
