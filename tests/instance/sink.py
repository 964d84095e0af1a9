"""sink.py: a real SMTP server (aiosmtpd) for whole-instance tests, run in a
thread on 127.0.0.1: it records every message it accepts and can be told
to answer 4xx for the first K attempts, 5xx for chosen recipients, or to
hang."""
import asyncio
import threading
import time

from aiosmtpd.controller import Controller

import harness


class Handler:
    def __init__(self):
        self.messages = []            # (mail_from, [rcpt], data bytes)
        self.tempfail_first = 0       # answer 451 to DATA this many times
        self.reject_rcpts = set()     # answer 550 to these RCPT TO
        self.attempts = 0
        self.stall = threading.Event()   # while set, DATA is not answered
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.reject_rcpts:
            return "550 5.1.1 <%s>: Recipient address rejected: no such user here" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        for _ in range(600):                 # at most 60 s
            if not self.stall.is_set():
                break
            await asyncio.sleep(0.1)
        with self.lock:
            self.attempts += 1
            if self.attempts <= self.tempfail_first:
                return "451 4.3.0 try again later, attempt %d" % self.attempts
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 2.0.0 Ok: accepted by the sink"


class Sink:
    def __init__(self, port=None, handler=None):
        self.handler = handler or Handler()
        self.port = port or harness.free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                     decode_data=False)
        self.controller.start()

    def wait(self, count, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len(self.handler.messages) >= count:
                return self.handler.messages
            time.sleep(0.05)
        raise AssertionError("sink has %d messages, expected %d" % (len(self.handler.messages), count))

    def stop(self):
        self.controller.stop()
