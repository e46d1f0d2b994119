"""A real relying party for black-box tests: Apache httpd with mod_auth_openidc (Debian's
libapache2-mod-auth-openidc, 2.4.12 on Debian 12), on a loopback port, with its own configuration,
pid file, logs and runtime directory in a temp dir. No system Apache configuration is read and
the packaged service is never started.

The protected location /protected/ serves a static page and shows who is signed in through
response headers set from the module's environment variables:
  X-Sub, X-User, X-Sid          the id_token's sub, preferred_username and sid claims
  X-Id-Token                    the serialized id_token (OIDCPassIDTokenAs serialized)
  X-Access-Token, X-Refresh-Token  the tokens the module holds for this session
(a test RP only: real deployments never echo tokens).

Logout URLs (mod_auth_openidc's own endpoints on the redirect URI):
  RP-initiated:  GET  <redirect_uri>?logout=<url-encoded post-logout URL>
  back-channel:  POST <redirect_uri>?logout=backchannel  (form logout_token=<JWT>)
"""
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import urllib.parse

import requests

from conftest import free_port

APACHE_BIN = os.environ.get("APACHE_BIN", "/usr/sbin/apache2")
MODULES = os.environ.get("APACHE_MODULES", "/usr/lib/apache2/modules")
OPENIDC_SO = os.path.join(MODULES, "mod_auth_openidc.so")


def missing():
    """Why the Apache relying party cannot run here, or None."""
    if not os.access(APACHE_BIN, os.X_OK):
        return f"{APACHE_BIN} not found (apt-get install apache2 libapache2-mod-auth-openidc)"
    if not os.path.exists(OPENIDC_SO):
        return f"{OPENIDC_SO} not found (apt-get install libapache2-mod-auth-openidc)"
    return None


class ApacheRP:
    """An Apache httpd process protecting /protected/ with mod_auth_openidc against `portal`.

    `port` is chosen by the caller beforehand (conftest.free_port()) when the portal's client
    registration must name it (redirect, post-logout and back-channel URIs)."""

    CLIENT_ID = "apache-rp"
    SECRET = "apache-rp-secret-" + secrets.token_hex(16)

    def __init__(self, portal, port=None, client_id=None, client_secret=None, extra_conf=""):
        reason = missing()
        if reason:
            raise RuntimeError(reason)
        self.portal = portal
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.client_id = client_id or self.CLIENT_ID
        self.client_secret = client_secret or self.SECRET
        self.dir = tempfile.mkdtemp(prefix="apache-rp-")
        self.redirect_uri = self.redirect_uri_for(self.port)
        self.protected = self.base + "/protected/"
        self.logged_out = self.base + "/loggedout.html"
        self.conf = os.path.join(self.dir, "httpd.conf")
        self.error_log = os.path.join(self.dir, "error.log")
        self.pidfile = os.path.join(self.dir, "httpd.pid")
        self._write(extra_conf)
        self.proc = None
        self.start()

    @staticmethod
    def redirect_uri_for(port):
        return f"http://127.0.0.1:{port}/protected/redirect_uri"

    @classmethod
    def client_yaml(cls, port, client_id=None, backchannel=True):
        """The portal's registration for this RP, as items of conftest's `clients:` list."""
        redirect = cls.redirect_uri_for(port)
        lines = [
            f"  - id: {client_id or cls.CLIENT_ID}",
            "    name: Apache test app",
            "    secret_env: APACHE_RP_SECRET",
            f'    redirect_uris: ["{redirect}"]',
            f'    post_logout_redirect_uris: ["http://127.0.0.1:{port}/loggedout.html"]',
        ]
        if backchannel:
            lines.append(f'    backchannel_logout_uri: "{redirect}?logout=backchannel"')
        return "\n".join(lines) + "\n"

    def _write(self, extra_conf):
        d = self.dir
        htdocs = os.path.join(d, "htdocs")
        os.makedirs(os.path.join(htdocs, "protected"))
        os.makedirs(os.path.join(d, "run"))
        with open(os.path.join(htdocs, "protected", "index.html"), "w") as f:
            f.write("<!doctype html><title>Protected</title><p>protected page</p>\n")
        with open(os.path.join(htdocs, "loggedout.html"), "w") as f:
            f.write("<!doctype html><title>Logged out</title><p>you are logged out of the app</p>\n")
        # Apache started as root serves from an unprivileged user: let it read the tree.
        user = ""
        if os.geteuid() == 0:
            user = "User www-data\nGroup www-data\n"
            for root, dirs, files in os.walk(d):
                os.chmod(root, 0o755)
                for name in files:
                    os.chmod(os.path.join(root, name), 0o644)
        modules = ["mpm_event", "authn_core", "authz_core", "authz_user", "auth_openidc", "headers", "mime", "dir",
                   "alias", "env"]
        loads = "\n".join(f"LoadModule {m}_module {MODULES}/mod_{m}.so" for m in modules)
        p = self.portal
        with open(self.conf, "w") as f:
            f.write(f"""# Generated by Tests/blackbox/rp_apache.py: a private Apache for one test module.
ServerRoot {d}
ServerName 127.0.0.1
Listen 127.0.0.1:{self.port}
PidFile {self.pidfile}
DefaultRuntimeDir {d}/run
Mutex file:{d}/run default
ErrorLog {self.error_log}
LogLevel warn auth_openidc:debug
LogFormat "%h %t \\"%r\\" %>s" brief
CustomLog {d}/access.log brief
{user}{loads}
TypesConfig /etc/mime.types
StartServers 1
ServerLimit 2
ThreadsPerChild 16
MaxRequestWorkers 32
Timeout 30
DocumentRoot {htdocs}
DirectoryIndex index.html
<Directory {htdocs}>
  Require all granted
</Directory>

OIDCProviderMetadataURL {p.base}/.well-known/openid-configuration
OIDCClientID {self.client_id}
OIDCClientSecret {self.client_secret}
OIDCProviderTokenEndpointAuth client_secret_basic
OIDCRedirectURI {self.redirect_uri}
OIDCCryptoPassphrase {secrets.token_hex(24)}
OIDCScope "openid profile email"
OIDCPKCEMethod S256
OIDCSessionType server-cache
OIDCCacheType shm
OIDCSessionInactivityTimeout 3600
OIDCPassIDTokenAs claims serialized
OIDCPassRefreshToken On
OIDCPassClaimsAs environment
OIDCHTTPTimeoutShort 10
OIDCHTTPTimeoutLong 30
OIDCProviderMetadataRefreshInterval 3600

<Location /protected/>
  AuthType openid-connect
  Require valid-user
  Header set X-Sub "%{{OIDC_CLAIM_sub}}e"
  Header set X-User "%{{OIDC_CLAIM_preferred_username}}e"
  Header set X-Sid "%{{OIDC_CLAIM_sid}}e"
  Header set X-Id-Token "%{{OIDC_id_token}}e"
  Header set X-Access-Token "%{{OIDC_access_token}}e"
  Header set X-Refresh-Token "%{{OIDC_refresh_token}}e"
</Location>
{extra_conf}
""")

    def start(self):
        check = subprocess.run([APACHE_BIN, "-t", "-f", self.conf], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError("apache2 -t refused the configuration:\n" + check.stderr + check.stdout)
        self.stdout = open(os.path.join(self.dir, "stdout.log"), "a")
        # -DFOREGROUND: the process is ours (no daemonizing), stopped with SIGTERM by pid.
        self.proc = subprocess.Popen([APACHE_BIN, "-f", self.conf, "-DFOREGROUND"], stdout=self.stdout,
                                     stderr=subprocess.STDOUT, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"})
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("apache2 exited:\n" + self.logs())
            try:
                requests.get(self.logged_out, timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("apache2 did not start listening:\n" + self.logs())

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.stdout.close()
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def logs(self):
        out = []
        for name in ("stdout.log", "error.log"):
            path = os.path.join(self.dir, name)
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    out.append(f"--- {name}\n" + f.read()[-20000:])
        return "\n".join(out)

    def logout_url(self, post_logout=None):
        """mod_auth_openidc's RP-initiated logout: ends its session, revokes its tokens at the OP's
        revocation_endpoint, then redirects to the OP's end_session_endpoint with id_token_hint."""
        target = post_logout or self.logged_out
        return self.redirect_uri + "?logout=" + urllib.parse.quote(target, safe="")
