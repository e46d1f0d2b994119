/// "My devices": where a person is signed in (browsers) and every live kubectl or application session.
public struct DevicesView: PageView {
    public static let template = "devices"
    public struct Browser {
        public var id, device, address, started, lastActive, ends, csrf: String
        public var current: Bool
        public init(id: String, device: String, address: String, started: String, lastActive: String, ends: String, current: Bool, csrf: String) {
            self.id = id; self.device = device; self.address = address; self.started = started; self.lastActive = lastActive
            self.ends = ends; self.current = current; self.csrf = csrf
        }
    }
    public struct Session {
        public var id, name, client, origin, device, address, started, lastUsed, expires, csrf: String
        public var label: String
        public var fromHere: Bool
        public init(id: String, name: String, label: String, client: String, origin: String, device: String, address: String, started: String,
                    lastUsed: String, expires: String, fromHere: Bool, csrf: String) {
            self.id = id; self.name = name; self.label = label; self.client = client; self.origin = origin; self.device = device
            self.address = address; self.started = started; self.lastUsed = lastUsed; self.expires = expires; self.fromHere = fromHere; self.csrf = csrf
        }
    }
    public var chrome: Chrome
    public var csrf: String
    public var browsers: [Browser]
    public var sessions: [Session]
    public var hasSessions: Bool
    public var othersExist: Bool
    public var idle: String
    public var notice: String?
    public var error: String?
    public init(chrome: Chrome, browsers: [Browser], sessions: [Session], idle: String, notice: String?, error: String?) {
        self.chrome = chrome; self.csrf = chrome.csrf; self.browsers = browsers; self.sessions = sessions; self.hasSessions = !sessions.isEmpty
        self.othersExist = browsers.count > 1 || !sessions.isEmpty; self.idle = idle; self.notice = notice; self.error = error
    }
}

/// Changing one's own password (local accounts).
public struct PasswordView: PageView {
    public static let template = "password"
    public var chrome: Chrome
    public var csrf: String
    public var minLength: Int
    public var directory: Bool
    public var error: String?
    public init(chrome: Chrome, minLength: Int, directory: Bool, error: String? = nil) {
        self.chrome = chrome; self.csrf = chrome.csrf; self.minLength = minLength; self.directory = directory; self.error = error
    }
}

/// /device: a person approves (or denies) a sign-in started on another device (RFC 8628).
public struct DeviceView: PageView {
    public static let template = "device"
    public var chrome: Chrome
    public var csrf: String
    /// Showing the request to approve (else: the form to type a code).
    public var confirm = false
    public var userCode = ""
    public var clientName = ""
    public var access: [String] = []
    public var address = ""
    public var device = ""
    public var requested = ""
    public var expires = ""
    public var error: String?
    public var notice: String?
    public init(chrome: Chrome) { self.chrome = chrome; self.csrf = chrome.csrf }
}
