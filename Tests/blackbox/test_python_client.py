"""The Python kubernetes client (the official one, from PyPI) with the kubeconfig the portal renders:
it treats every id_token within five minutes of expiry as expired and refreshes through the portal,
which needs a `client-secret` key (empty for the public `kubernetes` client)."""
import re

import pytest
import yaml

from test_kubectl import CLUSTER, env, login, pki  # noqa: F401 (fixtures)

kubernetes = pytest.importorskip("kubernetes")


def test_the_python_client_uses_and_refreshes_the_downloaded_kubeconfig(env, tmp_path, monkeypatch):  # noqa: F811
    portal, standin = env
    # The test issuer is plain http on loopback; oauthlib refuses that unless told (a real portal is https).
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    session, _ = login(portal)
    page = session.get(portal.issuer + "/kubernetes").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    r = session.post(portal.issuer + "/kubernetes/kubeconfig", data={"csrf": csrf, "cluster": CLUSTER, "variant": "oidc"})
    assert r.status_code == 200
    path = tmp_path / "config"
    path.write_text(r.text)
    before = yaml.safe_load(r.text)["users"][0]["user"]["auth-provider"]["config"]
    assert before["client-secret"] == ""

    from kubernetes import client, config
    api = config.new_client_from_config(config_file=str(path))
    pods = client.CoreV1Api(api).list_namespaced_pod("team-a")
    assert pods.items == []
    assert standin.seen[-1][0] == "oidc:alice" and standin.seen[-1][2] == "/api/v1/namespaces/team-a/pods"
    # Our id_tokens live seconds, so the client refreshed at once, through the portal, and saved the new tokens.
    after = yaml.safe_load(path.read_text())["users"][0]["user"]["auth-provider"]["config"]
    assert after["refresh-token"] != before["refresh-token"] and after["id-token"] != before["id-token"]
    refreshes = [e for e in portal.cli("audit", "--type", "token.refresh", "--json").stdout.splitlines() if '"alice"' in e]
    assert refreshes, "no refresh reached the portal"
