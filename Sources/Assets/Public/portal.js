// Copy buttons: <button class="copy" data-copy="element-id" data-what="the bash command">. No inline
// script, so the CSP stays strict. The button keeps its width (no re-wrap of the code beside it) and
// the result is announced through the page's status region.
document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-copy]");
  if (!button) return;
  var source = document.getElementById(button.getAttribute("data-copy"));
  var status = document.getElementById("copy-status");
  var what = button.getAttribute("data-what") || "the text";
  function say(text) { if (status) { status.textContent = ""; setTimeout(function () { status.textContent = text; }, 50); } }
  if (!source || !navigator.clipboard) { say("Copying is not available here: select the text and copy it."); return; }
  navigator.clipboard.writeText(source.textContent.trim()).then(function () {
    var label = button.querySelector(".copy-label");
    button.setAttribute("data-copied", "");
    if (label) label.textContent = "Copied";
    say("Copied " + what + " to the clipboard.");
    setTimeout(function () { button.removeAttribute("data-copied"); if (label) label.textContent = "Copy"; }, 2000);
  }, function () { say("Could not copy " + what + ": select the text and copy it."); });
});

// Passkeys (WebAuthn): <button data-webauthn="login|factor|step-up|register"> inside a form with hidden
// csrf and credential fields. The portal's options (binary fields in base64url) come from
// POST /webauthn/options; the browser's answer goes back in `credential`, as JSON, with the form.
(function () {
  function toBuffer(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }
  function toText(buffer) {
    var bytes = new Uint8Array(buffer), s = "";
    for (var i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-webauthn]");
    if (!button) return;
    var form = button.closest("form"), status = form.querySelector(".webauthn-status");
    function say(text) { if (status) status.textContent = text; }
    if (!window.PublicKeyCredential || !navigator.credentials) { say("This browser cannot use passkeys here."); return; }
    var purpose = button.getAttribute("data-webauthn");
    var body = new URLSearchParams();
    body.set("csrf", form.querySelector("input[name=csrf]").value);
    body.set("purpose", purpose);
    button.disabled = true;
    say("Waiting for your passkey…");
    fetch("/webauthn/options", { method: "POST", body: body, credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) throw { name: "the portal refused (" + r.status + ")" }; return r.json(); })
      .then(function (o) {
        var pk = o.publicKey;
        pk.challenge = toBuffer(pk.challenge);
        if (pk.user) pk.user.id = toBuffer(pk.user.id);
        (pk.allowCredentials || []).forEach(function (c) { c.id = toBuffer(c.id); });
        (pk.excludeCredentials || []).forEach(function (c) { c.id = toBuffer(c.id); });
        return purpose === "register" ? navigator.credentials.create({ publicKey: pk }) : navigator.credentials.get({ publicKey: pk });
      })
      .then(function (credential) {
        var r = credential.response;
        var out = { id: credential.id, rawId: toText(credential.rawId), type: credential.type,
                    response: { clientDataJSON: toText(r.clientDataJSON) } };
        if (r.attestationObject) out.response.attestationObject = toText(r.attestationObject);
        if (r.authenticatorData) {
          out.response.authenticatorData = toText(r.authenticatorData);
          out.response.signature = toText(r.signature);
          out.response.userHandle = r.userHandle ? toText(r.userHandle) : null;
        }
        form.querySelector("input[name=credential]").value = JSON.stringify(out);
        form.submit();
      })
      .catch(function (e) {
        button.disabled = false;
        say("The passkey was not used (" + ((e && e.name) || "error") + "). Try again, or use another way.");
      });
  });
})();
