"""deploy/: the kustomize base and the PostgreSQL overlay render offline and pass a schema check."""
import os
import shutil
import subprocess

import kubernetes_validate
import pytest
import yaml

ROOT = os.path.join(os.path.dirname(__file__), "../..")


def kustomize(path):
    kubectl = os.path.join(os.path.dirname(os.path.realpath(shutil.which("kubectl"))), "kubectl.1.32")
    r = subprocess.run([kubectl, "kustomize", os.path.join(ROOT, path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [d for d in yaml.safe_load_all(r.stdout) if d]


@pytest.mark.parametrize("path", ["deploy/kubernetes/base", "deploy/kubernetes/overlays/postgres"])
def test_manifests_render_and_validate_against_the_kubernetes_schema(path):
    docs = kustomize(path)
    for doc in docs:
        kubernetes_validate.validate(doc, "1.32.0", strict=True)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "ConfigMap", "Secret", "NetworkPolicy", "ServiceAccount"} <= kinds
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    env = {e["name"]: e for e in container["env"]}
    assert env["PORTAL_KEY_ENCRYPTION_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "portal-kek"
    if path.endswith("postgres"):
        assert deployment["spec"]["replicas"] >= 2
        assert env["PORTAL_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "portal-database"
        assert "PodDisruptionBudget" in kinds and "PersistentVolumeClaim" not in kinds
        assert all(v["name"] != "data" for v in pod["volumes"])
    else:
        assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
        assert "PersistentVolumeClaim" in kinds


def test_configmap_config_uses_only_known_keys(tmp_path):
    docs = kustomize("deploy/kubernetes/base")
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    cfg = yaml.safe_load(cm["data"]["portal.yaml"])
    # Point the files it names at real ones so that check-config judges the keys, not this machine.
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    for c in cfg["kubernetes"]["clusters"]:
        c["certificate_authority_file"] = str(ca)
    cfg["data_dir"] = str(tmp_path / "data")
    f = tmp_path / "portal.yaml"
    f.write_text(yaml.safe_dump(cfg))
    portal = os.environ.get("PORTAL_BIN") or os.path.join(ROOT, ".build/debug/portal")
    r = subprocess.run([portal, "check-config", "--config", str(f)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
