"""A portal binary copied out of the checkout, with its resource bundles as SwiftPM lays them out
beside it, still serves the real stylesheet and script."""
import glob
import os
import shutil
import tempfile

import requests

import conftest
from conftest import Portal

SOURCE = os.path.join(os.path.dirname(__file__), "../../Sources/Assets/Public")


def test_a_binary_installed_elsewhere_serves_the_bundled_css_and_script(monkeypatch):
    built = os.path.realpath(conftest.PORTAL_BIN)
    install = tempfile.mkdtemp(prefix="portal-install-")
    assert not install.startswith(os.path.realpath(os.path.join(os.path.dirname(__file__), "../..")))
    shutil.copy2(built, os.path.join(install, "portal"))
    bundles = glob.glob(os.path.join(os.path.dirname(built), "*.resources"))
    assert any(b.endswith("portal_Assets.resources") for b in bundles), bundles
    for b in bundles:
        shutil.copytree(b, os.path.join(install, os.path.basename(b)))
    # Mark the installed copy: what is served must come from beside the binary, not from the build tree.
    with open(os.path.join(SOURCE, "portal.css"), "rb") as f:
        css = f.read()
    with open(os.path.join(SOURCE, "portal.js"), "rb") as f:
        js = f.read()
    marked = css + b"\n/* installed copy */\n"
    with open(os.path.join(install, "portal_Assets.resources", "Public", "portal.css"), "wb") as f:
        f.write(marked)

    monkeypatch.setattr(conftest, "PORTAL_BIN", os.path.join(install, "portal"))
    env = {k: v for k, v in os.environ.items() if k != "PORTAL_PUBLIC_DIR"}
    p = Portal(env=env)
    try:
        r = requests.get(p.base + "/static/portal.css")
        assert r.status_code == 200 and r.headers["Content-Type"] == "text/css; charset=utf-8"
        assert r.content == marked
        assert r.headers["Cache-Control"] == "public, max-age=3600"
        gz = requests.get(p.base + "/static/portal.css", headers={"Accept-Encoding": "gzip"})
        assert gz.headers.get("Content-Encoding") == "gzip" and gz.content == marked   # requests inflates it
        s = requests.get(p.base + "/static/portal.js")
        assert s.status_code == 200 and s.content == js
        page = requests.get(p.base + "/login")
        assert '/static/portal.css' in page.text
    finally:
        assert p.stop() == 0
        logs = p.logs()
        shutil.rmtree(p.dir, ignore_errors=True)
        shutil.rmtree(install, ignore_errors=True)
    assert "static assets" not in logs and "unstyled" not in logs, logs
