"""dbservers.py: real database servers for the tests of the pgsql: and
ldap: tables, each started by the test in a temporary directory, on
127.0.0.1 and a free port, as an unprivileged account, and stopped by the
test (by the PID it started): Debian's PostgreSQL (initdb, then the
postgres server run directly) and OpenLDAP's slapd with its own slapd.conf,
loaded with ldapadd. Both can be stopped and started again on the same
port and data, for the tests of a server that goes away in the middle of
a run.

    pg = dbservers.Postgres()            # initdb + start; pg.port
    pg.sql("CREATE TABLE ...")           # as the superuser, over TCP
    pg.stop(); pg.start(); pg.cleanup()

    ldap = dbservers.Slapd("dc=example,dc=com")
    ldap.add(LDIF_TEXT); ldap.stop(); ldap.start(); ldap.cleanup()
"""
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import harness  # noqa: E402 (the same folder)

PG_BINDIRS = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
PG_USER = "postgres"
LDAP_USER = "openldap"
START_TIMEOUT = 30
STOP_TIMEOUT = 30


def available_postgres():
    """Why the PostgreSQL tests cannot run, or None."""
    if not PG_BINDIRS or not os.path.exists(os.path.join(PG_BINDIRS[-1], "initdb")):
        return "PostgreSQL is not installed (tools/install-deps)"
    if shutil.which("psql") is None:
        return "psql is not installed"
    if os.geteuid() != 0:
        return "starting PostgreSQL as another user needs root"
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        return "no %s account" % PG_USER
    return None


def available_slapd():
    """Why the LDAP tests cannot run, or None."""
    for prog in ("/usr/sbin/slapd", "/usr/bin/ldapadd"):
        if not os.path.exists(prog):
            return "%s is not installed (tools/install-deps)" % prog
    if os.geteuid() != 0:
        return "starting slapd as another user needs root"
    try:
        pwd.getpwnam(LDAP_USER)
    except KeyError:
        return "no %s account" % LDAP_USER
    return None


def free_port():
    return harness.free_port()      # one record of the ports handed out


def wait_accepting(port, proc, timeout=START_TIMEOUT):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError("server exited with status %s" % proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("port %d does not accept connections" % port)


def _as_user(user):
    pw = pwd.getpwnam(user)

    def demote():
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
    return demote


class _Server:
    proc = None
    STOP_SIGNAL = signal.SIGTERM

    def stop(self):
        """STOP_SIGNAL to the server this object started (by PID), then wait."""
        if self.proc is None or self.proc.poll() is not None:
            self.proc = None
            return
        self.proc.send_signal(self.STOP_SIGNAL)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT)
        self.proc = None

    def cleanup(self):
        self.stop()
        if self.log:
            self.log.close()
            self.log = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_text(self):
        try:
            with open(os.path.join(self.dir, "server.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""


class Postgres(_Server):
    """A PostgreSQL cluster in a temporary directory, run as postgres;
    superuser "admin" with password ADMIN_PASSWORD (SCRAM over TCP)."""
    ADMIN_PASSWORD = "admin-secret"
    # "fast" shutdown: clients are disconnected (SIGTERM would wait for
    # the tables' kept connections to end)
    STOP_SIGNAL = signal.SIGINT

    def __init__(self):
        self.bindir = PG_BINDIRS[-1]
        self.dir = tempfile.mkdtemp(prefix="tern-pgsql-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        self.sockdir = os.path.join(self.dir, "sock")
        os.mkdir(self.sockdir)
        pw = pwd.getpwnam(PG_USER)
        os.chown(self.sockdir, pw.pw_uid, pw.pw_gid)
        pwfile = os.path.join(self.dir, "pw")
        with open(pwfile, "w") as f:
            f.write(self.ADMIN_PASSWORD + "\n")
        os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.port = free_port()
        self.log = None
        r = subprocess.run([os.path.join(self.bindir, "initdb"), "-D", self.data, "-U", "admin",
                            "--auth=scram-sha-256", "--pwfile", pwfile, "-E", "UTF8",
                            "--locale=C", "--no-sync"],
                           preexec_fn=_as_user(PG_USER), capture_output=True, text=True,
                           timeout=120, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise AssertionError("initdb failed: %s%s" % (r.stdout, r.stderr))
        self.start()

    def start(self):
        self.log = self.log or open(os.path.join(self.dir, "server.log"), "ab")
        self.proc = subprocess.Popen(
            [os.path.join(self.bindir, "postgres"), "-D", self.data, "-p", str(self.port),
             "-k", self.sockdir, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
             "-c", "max_connections=50"],
            preexec_fn=_as_user(PG_USER), stdout=self.log, stderr=self.log,
            stdin=subprocess.DEVNULL)
        wait_accepting(self.port, self.proc)
        # accepting TCP is not yet accepting queries
        deadline = time.time() + START_TIMEOUT
        while time.time() < deadline:
            if self.sql("SELECT 1", check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise AssertionError("PostgreSQL does not answer: %s" % self.log_text()[-2000:])

    def sql(self, text, db="postgres", check=True):
        env = dict(os.environ, PGPASSWORD=self.ADMIN_PASSWORD)
        r = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "admin",
                            "-d", db, "-v", "ON_ERROR_STOP=1", "-q", "-c", text],
                           env=env, capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise AssertionError("psql failed: %s%s" % (r.stdout, r.stderr))
        return r


SLAPD_CONF = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/dyngroup.schema
pidfile {dir}/slapd.pid
argsfile {dir}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 16777216
suffix "{suffix}"
rootdn "cn=admin,{suffix}"
rootpw {password}
directory {dir}/db
access to attrs=userPassword by self write by anonymous auth by * none
access to * by * read
"""


class Slapd(_Server):
    """slapd with an mdb database for suffix, run as openldap; the root DN
    is cn=admin,SUFFIX with password ADMIN_PASSWORD."""
    ADMIN_PASSWORD = "ldap-secret"

    def __init__(self, suffix, tls=False):
        """tls: also offer STARTTLS, with a certificate for 127.0.0.1 signed
        by a test CA (self.ca_file)."""
        self.suffix = suffix
        self.dir = tempfile.mkdtemp(prefix="tern-slapd-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        os.mkdir(os.path.join(self.dir, "db"))
        self.conf = os.path.join(self.dir, "slapd.conf")
        conf = SLAPD_CONF.format(dir=self.dir, suffix=suffix, password=self.ADMIN_PASSWORD)
        owned = [self.dir, os.path.join(self.dir, "db"), self.conf]
        if tls:
            self.ca_file, cert, key = self._make_certificates()
            conf = ("TLSCACertificateFile %s\nTLSCertificateFile %s\nTLSCertificateKeyFile %s\n"
                    % (self.ca_file, cert, key)) + conf
            owned += [cert, key]
        with open(self.conf, "w") as f:
            f.write(conf)
        pw = pwd.getpwnam(LDAP_USER)
        for path in owned:
            os.chown(path, pw.pw_uid, pw.pw_gid)
        self.port = free_port()
        self.log = None
        self.start()
        self.add("dn: %s\nobjectClass: dcObject\nobjectClass: organization\no: test\ndc: %s\n"
                 % (suffix, suffix.split(",")[0].split("=")[1]))

    def _make_certificates(self):
        """A test CA and a server certificate for 127.0.0.1 and localhost."""
        def openssl(*args):
            r = subprocess.run(["openssl"] + list(args), capture_output=True, text=True,
                               timeout=60, cwd=self.dir)
            if r.returncode != 0:
                raise AssertionError("openssl %s: %s" % (args[0], r.stderr))
        ca_key, ca, key, csr, cert = (os.path.join(self.dir, n) for n in
                                      ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca,
                "-subj", "/CN=Tern test CA", "-days", "2")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
                "-subj", "/CN=127.0.0.1")
        ext = os.path.join(self.dir, "san.ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
                "-out", cert, "-days", "2", "-extfile", ext)
        os.chmod(ca, 0o644)
        return ca, cert, key

    @property
    def admin_dn(self):
        return "cn=admin," + self.suffix

    @property
    def url(self):
        return "ldap://127.0.0.1:%d" % self.port

    def start(self):
        self.log = self.log or open(os.path.join(self.dir, "server.log"), "ab")
        # -d 0: stay in the foreground, so that this object holds its PID
        self.proc = subprocess.Popen(
            ["/usr/sbin/slapd", "-f", self.conf, "-h", self.url + "/", "-d", "0"],
            preexec_fn=_as_user(LDAP_USER), stdout=self.log, stderr=self.log,
            stdin=subprocess.DEVNULL)
        wait_accepting(self.port, self.proc)

    def add(self, ldif):
        r = subprocess.run(["ldapadd", "-x", "-H", self.url, "-D", self.admin_dn, "-w",
                            self.ADMIN_PASSWORD], input=ldif, capture_output=True, text=True,
                           timeout=60)
        if r.returncode != 0:
            raise AssertionError("ldapadd failed: %s%s" % (r.stdout, r.stderr))
