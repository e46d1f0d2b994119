import Foundation

/// The second step of a sign-in (/login/factor), and the same question for a signed-in person (/step-up).
public struct FactorStepView: PageView {
    public static let template = "factor"
    public var chrome: Chrome?
    public var csrf: String
    /// /login/factor or /step-up.
    public var action: String
    public var heading: String
    public var intro: String
    public var next: String?
    public var hasPasskey: Bool
    public var hasCodes: Bool
    /// data-webauthn purpose of the passkey button: factor or step-up.
    public var purpose: String
    public var error: String?
    public var requestID: String?
    public init(chrome: Chrome?, csrf: String, action: String, heading: String, intro: String, next: String?, hasPasskey: Bool,
                hasCodes: Bool, purpose: String, error: String? = nil) {
        self.chrome = chrome; self.csrf = csrf; self.action = action; self.heading = heading; self.intro = intro; self.next = next
        self.hasPasskey = hasPasskey; self.hasCodes = hasCodes; self.purpose = purpose; self.error = error
    }
}

/// /account/factors: a person's passkeys and authenticator apps, and recovery codes.
public struct FactorsView: PageView {
    public static let template = "factors"
    public struct Row: Sendable {
        public var id, name, kind, added, lastUsed: String
        public var csrf: String
        public init(id: String, name: String, kind: String, added: String, lastUsed: String, csrf: String) {
            self.id = id; self.name = name; self.kind = kind; self.added = added; self.lastUsed = lastUsed; self.csrf = csrf
        }
    }
    public var chrome: Chrome
    public var csrf: String
    public var rows: [Row] { didSet { hasRows = !rows.isEmpty } }
    /// Stored (not computed): the templates see stored properties only.
    public var hasRows: Bool
    public var recoveryLeft: Int { didSet { hasRecovery = recoveryLeft > 0 } }
    public var recoveryTotal: Int
    public var hasRecovery: Bool
    /// Why the person is here (the policy requires a factor), if so.
    public var required: String?
    public var notice: String?
    public var error: String?
    public init(chrome: Chrome, rows: [Row], recoveryLeft: Int, recoveryTotal: Int) {
        self.chrome = chrome; self.csrf = chrome.csrf; self.rows = rows; self.recoveryLeft = recoveryLeft; self.recoveryTotal = recoveryTotal
        self.hasRows = !rows.isEmpty; self.hasRecovery = recoveryLeft > 0
    }
}

/// /account/factors/totp: the QR code and key of a new authenticator app, and the code that confirms it.
public struct TOTPEnrollView: PageView {
    public static let template = "totp"
    public var chrome: Chrome
    public var csrf: String
    public var enrollment: String
    /// The QR code as inline SVG (generated server-side; trusted markup, not user input).
    public var qrSVG: String
    public var secret: String
    public var name: String
    public var error: String?
    public init(chrome: Chrome, enrollment: String, qrSVG: String, secret: String, name: String = "", error: String? = nil) {
        self.chrome = chrome; self.csrf = chrome.csrf; self.enrollment = enrollment; self.qrSVG = qrSVG; self.secret = secret
        self.name = name; self.error = error
    }
}

/// New recovery codes, shown once.
public struct RecoveryCodesView: PageView {
    public static let template = "recovery"
    public var chrome: Chrome
    public var codes: [String]
    public init(chrome: Chrome, codes: [String]) { self.chrome = chrome; self.codes = codes }
}
