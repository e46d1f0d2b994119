"""An application credential of a directory (LDAP) user follows the directory: disabled there →
refused by the TokenReview webhook at once; removed from a group → the group disappears from it."""
import os
import re
import secrets
import shutil

import pytest
import requests

import ldap_fixture as L
from test_ldap import LDAPPortal, stop

WEBHOOK_TOKEN = secrets.token_hex(24)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("wh")
    (d / "token").write_text(WEBHOOK_TOKEN)
    slapd = L.Slapd()
    portal = LDAPPortal([slapd.url], extra=f"webhook:\n  bearer_token_file: {d / 'token'}\n")
    yield portal, slapd
    stop(portal)
    slapd.close()


def review(p, token):
    r = requests.post(p.base + "/webhook/tokenreview", headers={"Authorization": "Bearer " + WEBHOOK_TOKEN},
                      json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}})
    assert r.status_code == 200
    return r.json()["status"]


def test_directory_owner_disabled_or_removed_from_a_group(setup):
    p, slapd = setup
    s = requests.Session()
    csrf = re.search(r'name="csrf" value="([^"]+)"', s.get(p.base + "/login").text).group(1)
    r = s.post(p.base + "/login", data={"csrf": csrf, "username": "erin", "password": L.PASSWORDS["erin"]}, allow_redirects=False)
    assert r.status_code == 303
    csrf = re.search(r'name="csrf" value="([^"]+)"', s.get(p.base + "/credentials").text).group(1)   # replaced at sign-in
    r = s.post(p.base + "/credentials", data={"csrf": csrf, "name": "erin's pipeline", "expires": "86400"})
    assert r.status_code == 200, r.text
    token = re.search(r'<pre id="new-token"[^>]*>([^<]+)</pre>', r.text).group(1)
    st = review(p, token)
    assert st["authenticated"] is True and st["user"]["username"] == "oidc:erin"
    assert {"oidc:dev", "oidc:ops", "oidc:platform", "oidc:staff"} <= set(st["user"]["groups"])

    # Removed from dev in the directory: dev disappears from the credential.
    slapd.ldapmodify(f"dn: cn=dev,{L.GROUPS}\nchangetype: modify\ndelete: member\nmember: uid=erin,{L.PEOPLE}\n")
    st = review(p, token)
    assert st["authenticated"] is True and "oidc:dev" not in st["user"]["groups"]

    # Locked in the directory: refused at once.
    slapd.ldapmodify(f"dn: uid=erin,{L.PEOPLE}\nchangetype: modify\nadd: pwdAccountLockedTime\npwdAccountLockedTime: 000001010000Z\n")
    st = review(p, token)
    assert st["authenticated"] is False and "owner" in st["error"]
    slapd.ldapmodify(f"dn: uid=erin,{L.PEOPLE}\nchangetype: modify\ndelete: pwdAccountLockedTime\n")
    assert review(p, token)["authenticated"] is True
