"""Real loopback receivers for alert tests: an SMTP sink and a JSON webhook receiver.

The SMTP sink speaks just enough SMTP (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT)
for ``smtplib`` to deliver a message; it keeps what arrived, parsed with the stdlib's
``email`` package. The webhook receiver answers POSTs with a chosen status and keeps the
JSON bodies. Both run in a daemon thread on 127.0.0.1 and a free port (no dependency).
"""

from __future__ import annotations

import email
import email.policy
import http.server
import json
import socketserver
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from email.message import EmailMessage


def _serve_in_background(server: socketserver.ThreadingTCPServer) -> int:
    """Serve ``server`` from a daemon thread; returns its port."""
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return int(server.server_address[1])


class _Stoppable:
    """``stop()`` for a receiver holding its server in ``_server``."""

    _server: socketserver.ThreadingTCPServer | None

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@dataclass
class SmtpSink(_Stoppable):
    """Messages received, as ``(envelope_from, envelope_to, message)``."""

    host: str = "127.0.0.1"
    port: int = 0
    messages: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)
    _server: socketserver.ThreadingTCPServer | None = None

    def start(self) -> SmtpSink:
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write(f"{line}\r\n".encode())

            def handle(self) -> None:
                self.reply("220 shopflow-test-sink")
                sender, recipients = "", []
                while True:
                    raw = self.rfile.readline()
                    if not raw:
                        return
                    command = raw.decode().strip()
                    verb = command[:4].upper()
                    if verb in ("EHLO", "HELO"):
                        self.reply("250 sink")
                    elif verb == "MAIL":
                        sender, recipients = command.split(":", 1)[1].strip(" <>"), []
                        self.reply("250 OK")
                    elif verb == "RCPT":
                        recipients.append(command.split(":", 1)[1].strip(" <>"))
                        self.reply("250 OK")
                    elif verb == "DATA":
                        self.reply("354 end with <CRLF>.<CRLF>")
                        lines = []
                        while (line := self.rfile.readline()) not in (b".\r\n", b".\n", b""):
                            lines.append(line[1:] if line.startswith(b"..") else line)
                        message = email.message_from_bytes(b"".join(lines),
                                                           policy=email.policy.default)
                        sink.messages.append((sender, recipients, message))  # type: ignore[arg-type]
                        self.reply("250 queued")
                    elif verb in ("RSET", "NOOP"):
                        self.reply("250 OK")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("502 not implemented")

        self._server = socketserver.ThreadingTCPServer((self.host, 0), Handler)
        self.port = _serve_in_background(self._server)
        return self


@dataclass
class WebhookReceiver(_Stoppable):
    """JSON bodies POSTed to it; answers ``status`` (200 by default)."""

    host: str = "127.0.0.1"
    port: int = 0
    status: int = 200
    bodies: list[dict[str, Any]] = field(default_factory=list)
    _server: socketserver.ThreadingTCPServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hook"

    def events(self) -> list[str]:
        return [str(b.get("event")) for b in self.bodies]

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                receiver.bodies.append(json.loads(self.rfile.read(length) or b"{}"))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer((self.host, 0), Handler)
        self.port = _serve_in_background(self._server)
        return self
