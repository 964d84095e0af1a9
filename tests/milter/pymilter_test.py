"""pymilter_test.py: a milter for the whole-instance tests (python3-milter),
driven by the message it filters so that one filter exercises every
action:

- MAIL FROM <tempfail-mail@...>: TEMPFAIL at MAIL; <reject-mail@...>: REJECT;
  <reject-data@...>: a 554 reply code at DATA.
- RCPT TO <reject-rcpt@...>: a 550 5.7.1 reply code for that recipient.
- headers "X-Test-Action: WORD [ARG...]" at the end of the message:
  reject (a two-line 550 reply), tempfail, discard, accept, addheader NAME
  VALUE, insheader INDEX NAME VALUE, chgheader INDEX NAME VALUE, delheader
  INDEX NAME, addrcpt ADDR [ARGS], delrcpt ADDR, chgfrom ADDR [ARGS],
  replbody TEXT, quarantine REASON.

Every callback and the macros it saw are appended as JSON lines to the
file named by the second argument. Usage: pymilter_test.py SOCKET LOGFILE
(SOCKET in libmilter's form, inet:PORT@127.0.0.1)."""
import json
import sys

import Milter

LOG = None

MACROS = ["j", "_", "{daemon_name}", "{if_name}", "{if_addr}", "{client_addr}",
          "{client_name}", "{client_port}", "{mail_addr}", "{rcpt_addr}", "i", "v",
          "{auth_authen}", "{daemon_addr}", "{auth_type}", "{tls_version}", "{cipher}",
          "{cipher_bits}"]


def record(event, milter, **fields):
    macros = {}
    for name in MACROS:
        v = milter.getsymval(name)
        if v is not None:
            macros[name] = v
    fields.update(event=event, macros=macros)
    with open(LOG, "a") as f:
        f.write(json.dumps(fields) + "\n")


class TestMilter(Milter.Base):
    def __init__(self):
        self.actions = []
        self.headers = []
        self.bodytext = b""

    @Milter.noreply
    def connect(self, hostname, family, hostaddr):
        record("connect", self, hostname=hostname, hostaddr=str(hostaddr))
        return Milter.CONTINUE

    def hello(self, name):
        record("helo", self, helo=name)
        return Milter.CONTINUE

    def envfrom(self, f, *args):
        record("mail", self, sender=f, args=list(args))
        self.actions, self.headers, self.bodytext = [], [], b""
        self.sender = f
        if "tempfail-mail@" in f:
            return Milter.TEMPFAIL
        if "reject-mail@" in f:
            return Milter.REJECT
        return Milter.CONTINUE

    def envrcpt(self, to, *args):
        record("rcpt", self, rcpt=to, args=list(args))
        if "reject-rcpt@" in to:
            self.setreply("550", "5.7.1", "recipient refused by filter")
            return Milter.REJECT
        return Milter.CONTINUE

    def data(self):
        record("data", self)
        if "reject-data@" in self.sender:
            self.setreply("554", "5.7.2", "no data from this sender")
            return Milter.REJECT
        return Milter.CONTINUE

    def header(self, name, value):
        self.headers.append((name, value))
        if name.lower() == "x-test-action":
            self.actions.append(value.split(" "))
        return Milter.CONTINUE

    def eoh(self):
        record("eoh", self, headers=self.headers)
        return Milter.CONTINUE

    def body(self, chunk):
        self.bodytext += chunk
        return Milter.CONTINUE

    def eom(self):
        record("eom", self, body=self.bodytext.decode("latin-1"))
        for a in self.actions:
            verb, args = a[0], a[1:]
            if verb == "reject":
                self.setreply("550", "5.7.1", "first line of the refusal", "second line 100%%")
                return Milter.REJECT
            if verb == "tempfail":
                return Milter.TEMPFAIL
            if verb == "discard":
                return Milter.DISCARD
            if verb == "accept":
                return Milter.ACCEPT
            if verb == "addheader":
                self.addheader(args[0], " ".join(args[1:]))
            elif verb == "insheader":
                self.addheader(args[1], " ".join(args[2:]), int(args[0]))
            elif verb == "chgheader":
                self.chgheader(args[1], int(args[0]), " ".join(args[2:]))
            elif verb == "delheader":
                self.chgheader(args[1], int(args[0]), "")
            elif verb == "addrcpt":
                if len(args) > 1:
                    self.addrcpt(args[0], " ".join(args[1:]))
                else:
                    self.addrcpt(args[0])
            elif verb == "delrcpt":
                self.delrcpt(args[0])
            elif verb == "chgfrom":
                self.chgfrom(args[0], " ".join(args[1:]) if len(args) > 1 else None)
            elif verb == "replbody":
                self.replacebody((" ".join(args) + "\r\nsecond body line\r\n").encode())
            elif verb == "quarantine":
                self.quarantine(" ".join(args))
        return Milter.CONTINUE

    def unknown(self, cmd):
        record("unknown", self, command=cmd.decode("latin-1") if isinstance(cmd, bytes) else cmd)
        if "REFUSE-ME" in str(cmd):
            self.setreply("554", "5.7.0", "the filter refuses this command")
            return Milter.REJECT
        return Milter.CONTINUE

    def abort(self):
        record("abort", self)
        return Milter.CONTINUE

    def close(self):
        return Milter.CONTINUE


def main():
    global LOG
    socket, LOG = sys.argv[1], sys.argv[2]
    Milter.factory = TestMilter
    Milter.set_flags(Milter.ADDHDRS | Milter.CHGHDRS | Milter.CHGBODY | Milter.ADDRCPT
                     | Milter.ADDRCPT_PAR | Milter.DELRCPT | Milter.CHGFROM | Milter.QUARANTINE)
    Milter.runmilter("tern-test", socket, 30)


if __name__ == "__main__":
    main()
