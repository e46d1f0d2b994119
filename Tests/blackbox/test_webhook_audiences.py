"""The TokenReview exactly as a stock kube-apiserver sends it (metadata, spec.audiences = its
--api-audiences, by default its service-account issuer, an empty status), against the portal's
webhook.audiences setting, and the API server setup page saying which --api-audiences goes with it."""
import html
import re

import requests

from apiserver_standin import API_AUDIENCES, WebhookAuthenticator
from conftest import Portal
from test_hardening import PASSWORD, csrf_of, login

WEBHOOK_TOKEN = "wh-" + "a" * 40


def portal_with(tmp_path, audiences=None):
    (tmp_path / "token").write_text(WEBHOOK_TOKEN + "\n")
    extra = f"webhook:\n  bearer_token_file: {tmp_path / 'token'}\n"
    if audiences is not None:
        extra += f"  audiences: {audiences}\n"
    p = Portal(extra_yaml=extra)
    assert p.cli("robot", "add", "ci", "--team", "platform").returncode == 0
    r = p.cli("credential", "create", "--robot", "ci", "--name", "pipeline", "--expires", "1d")
    assert r.returncode == 0, r.stderr
    token = re.search(r"kpc_\S+", r.stdout).group(0)
    r = p.cli("user", "add", "boss", "--admin", "--password-stdin", stdin=PASSWORD + "\n")
    assert r.returncode == 0, r.stderr
    return p, token


def setup_page(p):
    page = login(p, "boss").get(p.base + "/admin/apiserver")
    assert page.status_code == 200
    return html.unescape(page.text)


def test_the_default_accepts_what_a_stock_api_server_names(tmp_path):
    p, token = portal_with(tmp_path)
    try:
        apiserver = WebhookAuthenticator(p.base + "/webhook/tokenreview", WEBHOOK_TOKEN)
        assert apiserver.authenticate(token) == ("oidc:robot:ci", [])
        r = requests.post(p.base + "/webhook/tokenreview", headers={"Authorization": "Bearer " + WEBHOOK_TOKEN},
                          json={"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1", "metadata": {"creationTimestamp": None},
                                "spec": {"token": token, "audiences": API_AUDIENCES}, "status": {"user": {}}})
        assert r.json()["status"]["audiences"] == API_AUDIENCES
        page = setup_page(p)
        assert "leave --api-audiences as it is" in page and "--api-audiences=" not in page
    finally:
        p.stop()


def test_a_set_audience_needs_the_flag_the_setup_page_gives(tmp_path):
    p, token = portal_with(tmp_path, '["portal-robots"]')
    try:
        stock = WebhookAuthenticator(p.base + "/webhook/tokenreview", WEBHOOK_TOKEN)
        try:
            stock.authenticate(token)
            raise AssertionError("a stock API server's review was accepted")
        except ValueError as e:
            assert "--api-audiences" in str(e) and "portal-robots" in str(e), e
        page = setup_page(p)
        assert "--api-audiences=<your --service-account-issuer>,portal-robots" in page
        # With the flag the page gives (the issuer first, then the portal's audience): accepted.
        flagged = WebhookAuthenticator(p.base + "/webhook/tokenreview", WEBHOOK_TOKEN, audiences=API_AUDIENCES + ["portal-robots"])
        assert flagged.authenticate(token) == ("oidc:robot:ci", [])
        r = requests.post(p.base + "/webhook/tokenreview", headers={"Authorization": "Bearer " + WEBHOOK_TOKEN},
                          json={"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
                                "spec": {"token": token, "audiences": API_AUDIENCES + ["portal-robots"]}})
        assert r.json()["status"]["audiences"] == ["portal-robots"]
    finally:
        p.stop()
