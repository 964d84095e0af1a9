"""dnsserver.py: a DNS server for whole-instance tests, on 127.0.0.1 (UDP,
a free port), answering from a zone the test gives:
{name: {"A": [...], "AAAA": [...], "TXT": [...], "PTR": [...],
"MX": [(pref, host)]}}. NXDOMAIN for names it does not know, SERVFAIL for
names in servfail, no answer at all for names in silent. Every query is
recorded in .queries as (name, type)."""
import socket
import threading

from dnslib import AAAA, MX, PTR, QTYPE, RCODE, RR, TXT, A, DNSRecord

RDATA = {"A": A, "AAAA": AAAA, "TXT": TXT, "PTR": PTR, "MX": lambda v: MX(v[1], v[0])}


class DnsServer:
    def __init__(self, zone, servfail=(), silent=(), host="127.0.0.1", port=0):
        """host and port: where to listen (a resolver that reads
        resolv.conf can only be sent to port 53 of a loopback address)."""
        self.zone, self.servfail, self.silent = zone, set(servfail), set(silent)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.queries = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                reply = self._answer(DNSRecord.parse(data))
            except Exception:        # a test server never dies of a strange query
                continue
            if reply is not None:
                self.sock.sendto(reply.pack(), peer)

    def _answer(self, request):
        q = request.q
        name = str(q.qname).rstrip(".").lower()
        qtype = QTYPE[q.qtype]
        self.queries.append((name, qtype))
        if name in self.silent:
            return None
        reply = request.reply()
        if name in self.servfail:
            reply.header.rcode = RCODE.SERVFAIL
        elif name not in self.zone:
            reply.header.rcode = RCODE.NXDOMAIN
        else:
            for value in self.zone[name].get(qtype, []):
                reply.add_answer(RR(q.qname, q.qtype, rdata=RDATA[qtype](value), ttl=60))
        return reply

    def stop(self):
        self.stopping.set()
        self.thread.join(5)
        self.sock.close()
