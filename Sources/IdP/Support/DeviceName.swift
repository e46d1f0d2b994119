import Foundation

/// A User-Agent header in words a person recognises, for the list of their signed-in devices:
/// "kubectl 1.32 on linux/amd64", "Firefox on Windows", "Go program". A guess from text the
/// client chose, never a security decision.
public enum DeviceName {
    public static func describe(userAgent: String) -> String {
        let ua = Identifiers.printable(userAgent)
        guard !ua.isEmpty else { return "Unknown device" }
        let lower = ua.lowercased()
        if lower.contains("kubelogin") || lower.contains("oidc-login") { return "kubelogin" }
        if lower.contains("mod_auth_openidc") { return "mod_auth_openidc" }
        if let kube = clientGo(ua) { return kube }
        if lower.hasPrefix("mozilla/") { return browser(ua) }
        if lower.hasPrefix("go-http-client/") { return "Go program" }
        if lower.hasPrefix("curl/") { return "curl" }
        if lower.hasPrefix("wget/") { return "Wget" }
        if lower.hasPrefix("python") || lower.contains("aiohttp/") { return "Python program" }
        if lower.hasPrefix("java/") || lower.hasPrefix("apache-httpclient/") || lower.hasPrefix("okhttp/") { return "Java program" }
        let product = ua.prefix { $0 != "/" && $0 != " " }.filter { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }
        return product.isEmpty ? "Unknown device" : String(product.prefix(40))
    }

    /// client-go's default, `kubectl/v1.32.0 (linux/amd64) kubernetes/abc123`: "kubectl 1.32 on linux/amd64".
    static func clientGo(_ ua: String) -> String? {
        let parts = ua.split(separator: " ")
        guard let first = parts.first, let slash = first.firstIndex(of: "/") else { return nil }
        var name = String(first[..<slash])
        if name.lowercased().hasSuffix(".exe") { name.removeLast(4) }
        guard !name.isEmpty, name.lowercased() == "kubectl" || parts.dropFirst().contains(where: { $0.hasPrefix("kubernetes/") })
        else { return nil }
        var out = name
        let numbers = first[first.index(after: slash)...].drop { $0 == "v" }.split(separator: ".", maxSplits: 2)
        if numbers.count >= 2, let major = Int(numbers[0]), let minor = Int(numbers[1].prefix { $0.isNumber }) {
            out += " \(major).\(minor)"
        }
        if let platform = parts.dropFirst().first(where: { $0.hasPrefix("(") && $0.hasSuffix(")") && $0.contains("/") }) {
            out += " on " + String(platform.dropFirst().dropLast())
        }
        return out
    }

    /// A browser and its platform, from the tokens browsers have sent for years.
    static func browser(_ ua: String) -> String {
        let name: String
        if ["Edg/", "EdgA/", "EdgiOS/", "Edge/"].contains(where: { ua.contains($0) }) {
            name = "Edge"
        } else if ua.contains("OPR/") || ua.contains("Opera") {
            name = "Opera"
        } else if ua.contains("SamsungBrowser/") {
            name = "Samsung Internet"
        } else if ua.contains("Firefox/") || ua.contains("FxiOS/") {
            name = "Firefox"
        } else if ua.contains("Chrome/") || ua.contains("CriOS/") || ua.contains("Chromium/") {
            name = "Chrome"
        } else if ua.contains("Safari/") {
            name = "Safari"
        } else {
            name = "Web browser"
        }
        guard let platform = platform(ua) else { return name }
        return name + " on " + platform
    }

    static func platform(_ ua: String) -> String? {
        // Order matters: iPhones say "like Mac OS X", Android says "Linux".
        if ua.contains("iPhone") { return "iPhone" }
        if ua.contains("iPad") { return "iPad" }
        if ua.contains("Android") { return "Android" }
        if ua.contains("CrOS") { return "ChromeOS" }
        if ua.contains("Windows") { return "Windows" }
        if ua.contains("Macintosh") || ua.contains("Mac OS X") { return "macOS" }
        if ua.contains("Linux") || ua.contains("X11") { return "Linux" }
        return nil
    }
}
