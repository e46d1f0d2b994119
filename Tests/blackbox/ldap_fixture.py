"""A private OpenLDAP slapd on loopback (see ../shared/RECIPES.md): its own slapd.conf in a temp dir,
memberof + refint + ppolicy overlays, ldap:// and ldaps:// listeners with a throwaway CA made by openssl,
and a base LDIF with users, groups and a nested group. Also a TCP server that accepts and never answers."""
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

SUFFIX = "dc=example,dc=org"
ADMIN_DN = "cn=admin," + SUFFIX
ADMIN_PW = "adminpw"
SERVICE_DN = "cn=portal,ou=services," + SUFFIX
SERVICE_PW = "service-password-\u00e9*()"
PEOPLE = "ou=people," + SUFFIX
GROUPS = "ou=groups," + SUFFIX

# Passwords: one with the filter specials and non-ASCII letters, to prove they are passed as typed.
PASSWORDS = {
    "alice": "alice-password",
    "bob": "P\u00e4ssw\u00f6rd *()\\ \u00f1\u00e5\u00df \u4e2d\u6587",
    "carol": "carol-password",
    "dave": "dave-password",
    "erin": "erin-password",
    "frank": "frank-password",
    "twin": "twin-password",
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(*args, input=None, check=True, env=None):
    r = subprocess.run(list(args), input=input, capture_output=True, text=True, timeout=60, env=env)
    if check and r.returncode != 0:
        raise RuntimeError(f"{args[0]} failed ({r.returncode}): {r.stderr}{r.stdout}")
    return r


def make_ca(directory, name):
    key, crt = os.path.join(directory, name + ".key"), os.path.join(directory, name + ".crt")
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
        "-out", crt, "-days", "2", "-subj", f"/CN=Portal test {name}")
    return key, crt


def make_server_cert(directory, ca_key, ca_crt):
    key, csr, crt = (os.path.join(directory, "server" + s) for s in (".key", ".csr", ".crt"))
    ext = os.path.join(directory, "server.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", csr,
        "-subj", "/CN=127.0.0.1")
    run("openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial", "-out", crt, "-days", "2",
        "-extfile", ext)
    os.chmod(key, 0o644)
    return key, crt


def user_ldif(uid, cn, mail, password, ou="people"):
    return f"""dn: uid={uid},ou={ou},{SUFFIX}
objectClass: inetOrgPerson
uid: {uid}
cn: {cn}
sn: {cn.split()[-1]}
mail: {mail}
userPassword:: {__import__('base64').b64encode(password.encode()).decode()}
"""


def group_ldif(cn, members):
    lines = [f"dn: cn={cn},ou=groups,{SUFFIX}", "objectClass: groupOfNames", f"cn: {cn}"]
    lines += [f"member: {m}" for m in members]
    return "\n".join(lines) + "\n"


def base_ldif():
    parts = [f"""dn: {SUFFIX}
objectClass: dcObject
objectClass: organization
o: Example
dc: example
""", f"dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n",
        f"dn: ou=contractors,{SUFFIX}\nobjectClass: organizationalUnit\nou: contractors\n",
        f"dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n",
        f"dn: ou=services,{SUFFIX}\nobjectClass: organizationalUnit\nou: services\n",
        f"""dn: {SERVICE_DN}
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: portal
userPassword:: {__import__('base64').b64encode(SERVICE_PW.encode()).decode()}
"""]
    names = {"alice": "Alice Liddell", "bob": "Bob Ünlü", "carol": "Carol Danvers", "dave": "Dave Bowman",
             "erin": "Erin Brockovich", "frank": "Frank Poole"}
    for uid, cn in names.items():
        parts.append(user_ldif(uid, cn, f"{uid}@example.org", PASSWORDS[uid]))
    # Two entries answer to uid=twin: a login must be refused, not pick one.
    parts.append(user_ldif("twin", "Twin One", "twin1@example.org", PASSWORDS["twin"]))
    parts.append(user_ldif("twin", "Twin Two", "twin2@example.org", PASSWORDS["twin"], ou="contractors"))
    dn = lambda u: f"uid={u},{PEOPLE}"
    parts.append(group_ldif("dev", [dn("alice"), dn("bob"), dn("erin")]))
    parts.append(group_ldif("ops", [dn("alice"), dn("erin"), dn("carol")]))
    # Nested: everyone in ops is in platform, and everyone in platform is in staff.
    parts.append(group_ldif("platform", [f"cn=ops,{GROUPS}"]))
    parts.append(group_ldif("staff", [f"cn=platform,{GROUPS}"]))
    return "\n".join(parts)


class Slapd:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="portal-slapd-")
        os.makedirs(os.path.join(self.dir, "data"))
        os.makedirs(os.path.join(self.dir, "run"))
        ca_key, self.ca_file = make_ca(self.dir, "ca")
        _, self.wrong_ca_file = make_ca(self.dir, "wrong-ca")
        key, crt = make_server_cert(self.dir, ca_key, self.ca_file)
        self.port, self.tls_port = free_port(), free_port()
        self.url = f"ldap://127.0.0.1:{self.port}"
        self.ldaps_url = f"ldaps://127.0.0.1:{self.tls_port}"
        rootpw = run("slappasswd", "-s", ADMIN_PW).stdout.strip()
        self.conf = os.path.join(self.dir, "slapd.conf")
        with open(self.conf, "w") as f:
            f.write(f"""include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
moduleload refint
moduleload ppolicy
pidfile {self.dir}/run/slapd.pid
TLSCACertificateFile {self.ca_file}
TLSCertificateFile {crt}
TLSCertificateKeyFile {key}
database mdb
maxsize 104857600
suffix "{SUFFIX}"
rootdn "{ADMIN_DN}"
rootpw {rootpw}
directory {self.dir}/data
overlay memberof
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-memberof-ad memberOf
memberof-refint TRUE
overlay refint
refint_attributes member
overlay ppolicy
access to attrs=userPassword by self write by anonymous auth by * none
access to * by * read
""")
        run("slaptest", "-f", self.conf, "-u")
        self.start()
        self.ldapadd(base_ldif())

    def start(self):
        # In the foreground (-d stats) so the test owns the process and reads its operation log.
        self.logfile = open(os.path.join(self.dir, "slapd.log"), "a")
        self.proc = subprocess.Popen(["slapd", "-f", self.conf, "-h", f"{self.url}/ {self.ldaps_url}/", "-u", "root", "-g", "root",
                                      "-d", "stats"], stdout=self.logfile, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            if run("ldapsearch", "-x", "-H", self.url, "-s", "base", "-b", "", check=False).returncode == 0:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError("slapd did not start: " + self.log()[-2000:])

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.logfile.close()

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _admin(self, tool, ldif=None, *args):
        return run(tool, "-x", "-H", self.url, "-D", ADMIN_DN, "-w", ADMIN_PW, *args, input=ldif)

    def ldapadd(self, ldif):
        return self._admin("ldapadd", ldif)

    def ldapmodify(self, ldif):
        return self._admin("ldapmodify", ldif)

    def ldapdelete(self, dn):
        return self._admin("ldapdelete", None, dn)

    def log(self):
        try:
            with open(os.path.join(self.dir, "slapd.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def search(self, base, filt="(objectClass=*)", *attrs):
        return self._admin("ldapsearch", None, "-LLL", "-b", base, filt, *attrs).stdout


class SilentServer:
    """Accepts TCP connections and never answers: the directory that hangs."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = f"ldap://127.0.0.1:{self.port}"
        self.held = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)    # keep it open, read nothing, say nothing

    def close(self):
        self.closed = True
        self.sock.close()
        for c in self.held:
            c.close()


def closed_port_url():
    """An ldap:// URL where nothing listens."""
    return f"ldap://127.0.0.1:{free_port()}"
