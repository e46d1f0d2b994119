"""A TLS stand-in for kube-apiserver's OIDC authenticator, for tests with the real kubectl.

It checks a bearer token the way kube-apiserver does (--oidc-issuer-url, --oidc-client-id,
--oidc-username-claim/prefix, --oidc-groups-claim/prefix, --oidc-signing-algs): discovery from
the issuer → JWKS (refetched on an unknown kid) → signature with an allowed algorithm → iss,
aud, exp (no leeway), the username claim, groups as a string array. It answers just enough of
the API (discovery and an empty pod list) for `kubectl get pods`, and records who called.
"""
import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet


class Authenticator:
    def __init__(self, issuer, client_id, username_claim="preferred_username", username_prefix="oidc:",
                 groups_claim="groups", groups_prefix="oidc:", algorithms=("RS256",), issuer_ca=None):
        self.issuer, self.client_id = issuer, client_id
        self.username_claim, self.username_prefix = username_claim, username_prefix
        self.groups_claim, self.groups_prefix = groups_claim, groups_prefix
        self.algorithms = list(algorithms)
        self.verify = issuer_ca or True
        self.keys = None
        self.lock = threading.Lock()

    def _fetch_keys(self):
        meta = requests.get(self.issuer + "/.well-known/openid-configuration", verify=self.verify, timeout=5).json()
        assert meta["issuer"] == self.issuer, "discovery issuer mismatch"
        self.keys = KeySet.import_key_set(requests.get(meta["jwks_uri"], verify=self.verify, timeout=5).json())

    def authenticate(self, token):
        """Returns (username, groups) or raises ValueError with the reason."""
        with self.lock:
            if self.keys is None:
                self._fetch_keys()
            try:
                decoded = jwt.decode(token, self.keys, algorithms=self.algorithms)
            except (JoseError, ValueError) as e:
                # An unknown kid may be a rotated key: refetch once, like go-oidc's remote key set.
                self._fetch_keys()
                try:
                    decoded = jwt.decode(token, self.keys, algorithms=self.algorithms)
                except (JoseError, ValueError) as e2:
                    raise ValueError(f"signature: {e2}") from e
        c = decoded.claims
        if c.get("iss") != self.issuer:
            raise ValueError("iss mismatch")
        aud = c.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        if self.client_id not in auds:
            raise ValueError("aud mismatch")
        if not isinstance(c.get("exp"), int) or c["exp"] <= time.time():
            raise ValueError("expired")
        name = c.get(self.username_claim)
        if not isinstance(name, str) or not name:
            raise ValueError("no username claim")
        if self.username_claim == "email" and c.get("email_verified") is not True:
            raise ValueError("email not verified")
        groups = c.get(self.groups_claim, [])
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise ValueError("groups is not a string array")
        return self.username_prefix + name, [self.groups_prefix + g for g in groups]


class StandIn:
    def __init__(self, authenticator, cert, key, port=0):
        self.auth = authenticator
        self.seen = []  # (username, groups, path) of authenticated requests
        self.refused = []  # reasons
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                header = self.headers.get("Authorization", "")
                if not header.startswith("Bearer "):
                    outer.refused.append("no bearer token")
                    return self._send(401, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                            "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
                try:
                    user, groups = outer.auth.authenticate(header[7:])
                except Exception as e:  # noqa: BLE001 - any failure is a 401, as in kube-apiserver
                    outer.refused.append(str(e))
                    return self._send(401, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                            "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
                path = self.path.split("?")[0]
                outer.seen.append((user, groups, path))
                if path == "/api":
                    return self._send(200, {"kind": "APIVersions", "versions": ["v1"],
                                            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
                if path == "/apis":
                    return self._send(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
                if path == "/api/v1":
                    return self._send(200, {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                        {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod",
                         "verbs": ["get", "list"], "shortNames": ["po"]}]})
                if path.startswith("/api/v1/namespaces/") and path.endswith("/pods"):
                    return self._send(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": []})
                if path == "/version":
                    return self._send(200, {"major": "1", "minor": "32", "gitVersion": "v1.32.0-standin"})
                return self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404, "reason": "NotFound"})

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# What a stock kube-apiserver names in spec.audiences: its --api-audiences, which defaults to its
# --service-account-issuer (this is kubeadm's and most distributions' issuer).
API_AUDIENCES = ["https://kubernetes.default.svc.cluster.local"]


class WebhookAuthenticator:
    """kube-apiserver's --authentication-token-webhook-config-file, v1, as stock kube-apiserver does
    it: POST a TokenReview (metadata, spec.token, spec.audiences = its API audiences, an empty
    status) with the bearer token the webhook kubeconfig names; accept status.authenticated only if
    status.audiences is empty (valid for the API server) or shares one of the API audiences."""

    def __init__(self, url, bearer, version="authentication.k8s.io/v1", audiences=API_AUDIENCES):
        self.url, self.bearer, self.version, self.audiences = url, bearer, version, audiences
        self.calls = 0

    def authenticate(self, token):
        self.calls += 1
        spec = {"token": token}
        if self.audiences:
            spec["audiences"] = list(self.audiences)
        body = {"kind": "TokenReview", "apiVersion": self.version, "metadata": {"creationTimestamp": None},
                "spec": spec, "status": {"user": {}}}
        r = requests.post(self.url, json=body, headers={"Authorization": "Bearer " + self.bearer}, timeout=5)
        if r.status_code != 200:
            raise ValueError(f"webhook answered {r.status_code}")
        status = r.json().get("status", {})
        if not status.get("authenticated"):
            raise ValueError(status.get("error", "not authenticated"))
        got = status.get("audiences") or []
        if self.audiences and got and not set(got) & set(self.audiences):
            raise ValueError(f"webhook audiences {got} are not the API server's {self.audiences}")
        user = status["user"]
        return user["username"], user.get("groups", [])
