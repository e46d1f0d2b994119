"""A private MIT Kerberos KDC on a loopback port, in a temp dir (see ../shared RECIPES).

Nothing in /etc is read or written: every process gets KRB5_CONFIG / KRB5_KDC_PROFILE pointing
here, and ticket caches, keytabs and the replay cache live in the same temp dir."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

REALM = "EXAMPLE.ORG"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class KDC:
    def __init__(self, realm=REALM):
        for tool in ("krb5kdc", "kdb5_util", "kadmin.local", "kinit"):
            if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
                raise RuntimeError(f"{tool} is missing: scripts/test.sh installs krb5-kdc krb5-admin-server krb5-user")
        self.realm = realm
        self.dir = tempfile.mkdtemp(prefix="portal-kdc-")
        self.port = _free_port()
        d = self.dir
        with open(f"{d}/krb5.conf", "w") as f:
            f.write(f"""[libdefaults]
  default_realm = {realm}
  dns_lookup_realm = false
  dns_lookup_kdc = false
  rdns = false
  dns_canonicalize_hostname = false
  udp_preference_limit = 1
[realms]
  {realm} = {{
    kdc = 127.0.0.1:{self.port}
  }}
[domain_realm]
  localhost = {realm}
""")
        with open(f"{d}/kdc.conf", "w") as f:
            f.write(f"""[kdcdefaults]
  kdc_listen = 127.0.0.1:{self.port}
  kdc_tcp_listen = 127.0.0.1:{self.port}
[realms]
  {realm} = {{
    database_name = {d}/principal
    key_stash_file = {d}/stash
    acl_file = {d}/kadm5.acl
    kdc_listen = 127.0.0.1:{self.port}
    kdc_tcp_listen = 127.0.0.1:{self.port}
  }}
[logging]
  kdc = FILE:{d}/kdc.log
""")
        open(f"{d}/kadm5.acl", "w").close()
        os.makedirs(f"{d}/rcache", exist_ok=True)
        self.env = dict(os.environ, KRB5_CONFIG=f"{d}/krb5.conf", KRB5_KDC_PROFILE=f"{d}/kdc.conf",
                        KRB5RCACHEDIR=f"{d}/rcache", KRB5CCNAME=f"FILE:{d}/ccache.default")
        self.env.pop("KRB5_KTNAME", None)
        self._run("kdb5_util", "create", "-s", "-r", realm, "-P", "kdc-master-password")
        self.proc = subprocess.Popen(["krb5kdc", "-n", "-P", f"{d}/kdc.pid"], env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=open(f"{d}/kdc.stderr", "w"))
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("krb5kdc exited:\n" + open(f"{d}/kdc.stderr").read())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the KDC did not start listening")

    def _run(self, *args, stdin=None):
        r = subprocess.run(list(args), env=self.env, input=stdin, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {r.stdout}{r.stderr}")
        return r

    def kadmin(self, query):
        return self._run("kadmin.local", "-r", self.realm, "-q", query)

    def add_user(self, name, password):
        self.kadmin(f"addprinc -pw {password} {name}@{self.realm}")

    def add_service(self, principal):
        self.kadmin(f"addprinc -randkey {principal}@{self.realm}")

    def keytab(self, principal, name=None):
        """A new keytab holding `principal` (added to the KDC first when missing)."""
        path = os.path.join(self.dir, name or principal.replace("/", "_") + ".keytab")
        if f"{principal}@{self.realm}" not in self._run("kadmin.local", "-r", self.realm, "-q", "listprincs").stdout:
            self.add_service(principal)
        # -norandkey keeps the key the KDC issues tickets with (ktadd would otherwise re-key it).
        self.kadmin(f"ktadd -norandkey -k {path} {principal}@{self.realm}")
        return path

    def kinit(self, name, password):
        """Environment (KRB5_CONFIG, KRB5CCNAME) of a fresh ticket cache holding `name`'s TGT."""
        cc = f"FILE:{self.dir}/ccache.{name.replace('/', '_')}"
        env = dict(self.env, KRB5CCNAME=cc)
        r = subprocess.run(["kinit", f"{name}@{self.realm}"], env=env, input=password + "\n", capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"kinit {name} failed: {r.stdout}{r.stderr}")
        return env

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
