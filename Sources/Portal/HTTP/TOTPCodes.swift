import Foundation
import HummingbirdOTP
import IdP

/// RFC 6238 codes from hummingbird-auth's HummingbirdOTP (SHA-1, 6 digits, 30 s: what every authenticator app does).
struct HummingbirdTOTPCodes: OneTimeCodes {
    func code(secret: String, step: Int) -> Int {
        TOTP(secret: secret).compute(date: Date(timeIntervalSince1970: TimeInterval(step * SecondFactors.stepSeconds)))
    }

    func provisioningURI(secret: String, label: String, issuer: String) -> String {
        TOTP(secret: secret).createAuthenticatorURL(label: label, issuer: issuer)
    }
}
