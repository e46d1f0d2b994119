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


@pytest.mark.parametrize("path", ["deploy/kubernetes/base", "deploy/kubernetes/overlays/postgres", "deploy/kubernetes/examples/kerberos"])
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
    token = tmp_path / "metrics-token"
    token.write_text("m" * 40)
    assert cfg["metrics"]["bearer_token_file"] == "/etc/portal-metrics/token"
    cfg["metrics"]["bearer_token_file"] = str(token)
    # Behind an ingress, client addresses come from X-Forwarded-For only via trusted proxies.
    assert cfg["server"]["trusted_proxies"]
    f = tmp_path / "portal.yaml"
    f.write_text(yaml.safe_dump(cfg))
    portal = os.environ.get("PORTAL_BIN") or os.path.join(ROOT, ".build/debug/portal")
    r = subprocess.run([portal, "check-config", "--config", str(f)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_kerberos_example_mounts_keytab_krb5_conf_and_a_kinit_sidecar(tmp_path):
    docs = kustomize("deploy/kubernetes/examples/kerberos")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["http-keytab"]["secret"]["secretName"] == "portal-keytab"
    assert volumes["krb5-conf"]["configMap"]["name"] == "portal-krb5"
    assert volumes["krb5-ccache"]["emptyDir"]["medium"] == "Memory"
    portal = next(c for c in pod["containers"] if c["name"] == "portal")
    mounts = {m["name"]: m["mountPath"] for m in portal["volumeMounts"]}
    assert mounts["krb5-conf"] == "/etc/krb5.conf.d" and mounts["krb5-ccache"] == "/var/run/krb5cc"
    kinit = next(c for c in pod["initContainers"] if c["name"] == "kinit")
    assert kinit["restartPolicy"] == "Always" and kinit["image"].endswith("portal-kinit:0.1.0")
    # The portal configuration in the example is valid (keytab aside, which lives in the Secret).
    cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "portal-config")
    cfg = yaml.safe_load(cm["data"]["portal.yaml"])
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    for c in cfg["kubernetes"]["clusters"]:
        c["certificate_authority_file"] = str(ca)
    cfg["data_dir"] = str(tmp_path / "data")
    del cfg["kerberos"]["keytab"]
    f = tmp_path / "portal.yaml"
    f.write_text(yaml.safe_dump(cfg))
    portal_bin = os.environ.get("PORTAL_BIN") or os.path.join(ROOT, ".build/debug/portal")
    r = subprocess.run([portal_bin, "check-config", "--config", str(f)], capture_output=True, text=True)
    problems = [line for line in r.stdout.splitlines() if line.strip()]
    assert all("kerberos.keytab" in line for line in problems), r.stdout + r.stderr


def test_kerberos_example_gives_the_replay_cache_a_writable_directory():
    docs = kustomize("deploy/kubernetes/examples/kerberos")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    portal = next(c for c in pod["containers"] if c["name"] == "portal")
    assert portal["securityContext"]["readOnlyRootFilesystem"] is True
    env = {e["name"]: e.get("value") for e in portal["env"]}
    mounts = {m["name"]: m["mountPath"] for m in portal["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert env["KRB5RCACHEDIR"] == mounts["krb5-rcache"] == "/var/run/krb5rcache"
    assert "emptyDir" in volumes["krb5-rcache"]


def test_metrics_token_is_mounted_from_a_secret():
    docs = kustomize("deploy/kubernetes/base")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    portal = next(c for c in pod["containers"] if c["name"] == "portal")
    mounts = {m["name"]: m["mountPath"] for m in portal["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["metrics-token"] == "/etc/portal-metrics"
    assert volumes["metrics-token"]["secret"]["secretName"] == "portal-metrics"
    assert any(d["kind"] == "Secret" and d["metadata"]["name"] == "portal-metrics" for d in docs)
