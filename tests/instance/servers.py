"""servers.py: the one threaded socket server the whole-instance tests build
their fake peers on (scripted SMTP servers, policy servers, milters, a
Dovecot auth service).

A Server listens on loopback only: TCP on 127.0.0.1 (a free port unless
one is given) or a UNIX socket path. A thread accepts connections and hands
each to handle(conn), in a thread of its own (threaded=True) or one after
the other in the accepting thread (threaded=False, for peers that must see
one session at a time). It is bounded: it accepts for at most `lifetime`
seconds and `max_connections` connections. recv() reads and records what
each connection sent (.received, one bytearray per connection, in accept
order). stop() ends it: no more accepts, every open connection shut down,
the threads joined; tests call it from addCleanup/tearDownClass.

Typical use:

    class Echo(servers.Server):
        def handle(self, conn):
            while True:
                data = self.recv(conn)
                if not data:
                    return
                conn.sendall(data)

    echo = Echo()
    self.addCleanup(echo.stop)
    ... echo.port ...
"""
import os
import socket
import threading
import time

LIFETIME = 3600          # seconds; longer than any module runs, even with sanitizers
MAX_CONNECTIONS = 10000


class Server:
    """Subclasses define handle(conn); the listening socket is ready (and
    .port or .path known) when the constructor returns."""

    def __init__(self, path=None, host="127.0.0.1", port=0, backlog=16, threaded=True,
                 rcvbuf=None, lifetime=LIFETIME, max_connections=MAX_CONNECTIONS, record=True,
                 mode=0o666):
        """path: a UNIX socket (replaced if it exists; chmod to mode, 0666
        by default so that daemons running as mail_owner can connect, None
        to keep the mode the umask gave); otherwise TCP on host
        (a loopback address) and port. rcvbuf: SO_RCVBUF of the listener,
        which accepted connections inherit. record=False: recv() keeps
        nothing (for peers fed far more than a test needs to keep)."""
        if path is None and not host.startswith("127."):
            raise ValueError("test servers listen on loopback only, not %r" % host)
        self.path, self.threaded, self.record = path, threaded, record
        self.max_connections = max_connections
        self.deadline = time.time() + lifetime
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.conns = []             # every accepted socket, in accept order
        self.received = []          # bytes recv() read, one bytearray per connection
        self._index = {}            # id(conn) -> position in conns
        self._threads = []
        if path is not None:
            if os.path.lexists(path):
                os.unlink(path)
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if path is not None:
            self.sock.bind(path)
            if mode is not None:
                os.chmod(path, mode)
            self.port = None
        else:
            self.sock.bind((host, port))
            self.port = self.sock.getsockname()[1]
        self.host = host
        self.sock.listen(backlog)
        self.sock.settimeout(0.2)
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping.is_set() and time.time() < self.deadline:
            if len(self.conns) >= self.max_connections:
                return
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                return
            conn.settimeout(None)          # not the listener's 0.2 s poll
            with self.lock:
                self._index[id(conn)] = len(self.conns)
                self.conns.append(conn)
                self.received.append(bytearray())
            if self.threaded:
                t = threading.Thread(target=self._run, args=(conn,), daemon=True)
                self._threads.append(t)
                t.start()
            else:
                self._run(conn)

    def _run(self, conn):
        try:
            self.handle(conn)
        except (OSError, EOFError):
            pass                           # the client went away: its business

    def handle(self, conn):
        """Serve one connection; the base class only closes it."""
        conn.close()

    def recv(self, conn, n=65536):
        """conn.recv(n), recorded in .received (b"" at end of stream)."""
        data = conn.recv(n)
        if not self.record:
            return data
        with self.lock:
            i = self._index.get(id(conn))
            if i is not None:
                self.received[i] += data
        return data

    def recv_exactly(self, conn, n):
        """n bytes from conn, or None when it closes first."""
        data = b""
        while len(data) < n:
            more = self.recv(conn, n - len(data))
            if not more:
                return None
            data += more
        return data

    def stop(self):
        """Stop accepting, shut every open connection down, join the
        threads (5 s in all at most: a handler that sleeps on is left, as
        a daemon thread) and remove a UNIX socket. Handlers that wait
        should wait on self.stopping, which stop() sets."""
        self.stopping.set()
        try:
            self.sock.close()
        except OSError:
            pass
        for conn in list(self.conns):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.time() + 5
        self.thread.join(5)
        for t in list(self._threads):
            t.join(max(0.0, deadline - time.time()))
        for conn in list(self.conns):
            try:
                conn.close()
            except OSError:
                pass
        if self.path is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass
