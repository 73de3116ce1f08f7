"""A real SMTP server on 127.0.0.1 for tests, with chosen faults.

Both test suites (framework-free and Odoo) use it. It is built on aiosmtpd and
speaks real SMTP over a real socket: AUTH PLAIN/LOGIN against a table of
credentials, STARTTLS or implicit TLS with a certificate generated at test time,
and faults chosen per test::

    with SmtpServer(credentials={"alice": "secret"}, tls="starttls") as server:
        server.add_fault("RCPT", reply="550 5.1.1 No such user", match="ghost@")
        server.add_fault("CONNECT", action="hang", seconds=5)
        ...
        server.wait_for(1)
        server.messages[0].rcpt_tos

``pipelining=True`` advertises ESMTP PIPELINING (RFC 2920): aiosmtpd reads
commands from a buffered stream and answers them in order, so a client may
send MAIL FROM, every RCPT TO and DATA in one write. ``smtputf8=True``
advertises SMTPUTF8. ``connections`` counts client connections,
``peak_connections`` the most open at the same time.

Fault points are SMTP verbs (EHLO, HELO, STARTTLS, AUTH, MAIL, RCPT, DATA,
RSET, NOOP, QUIT), CONNECT (before the greeting) and MESSAGE (after the
message content was received, where a real server answers the end of DATA).
Actions: ``reply`` (send the given reply; a 421 also closes the connection, as
RFC 5321 says), ``drop`` (close without a word), ``hang`` (say nothing for
``seconds``, then close) and ``garbage`` (answer with a line that is not SMTP).

AUTH XOAUTH2 (what Microsoft 365 and Gmail take instead of a password) is offered
when ``xoauth2`` is given: a callable ``(user, access_token) -> bool``, typically
``testing.oauth.OAuthProvider.check_access_token``. A refused token gets what
Gmail answers: a ``334`` challenge carrying a JSON error, then, after the
client's empty line, ``535 5.7.8``. Providers offer AUTH only inside TLS:
``auth_require_tls=True`` (the default with ``xoauth2`` and STARTTLS) refuses AUTH
before STARTTLS with ``538 5.7.11`` and does not advertise it.

This module is framework-free: it never imports odoo.
"""

import asyncio
import base64
import binascii
import email
import email.policy
import json
import logging
import socket
import threading
import time
import warnings
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, LoginPassword

from .tlscert import make_self_signed

LOOPBACK = "127.0.0.1"
FAULT_POINTS = frozenset(
    {"CONNECT", "EHLO", "HELO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "MESSAGE", "RSET", "NOOP", "QUIT"}
)
FAULT_ACTIONS = frozenset({"reply", "drop", "hang", "garbage"})
MAX_HANG_SECONDS = 120

# aiosmtpd logs every command at INFO on "mail.log"; a test fixture stays quiet.
logging.getLogger("mail.log").setLevel(logging.ERROR)
# AUTH over plain TCP is what some tests want to exercise, on loopback only.
warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS", category=UserWarning)


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def closed_port():
    """A port that refuses connections (nothing listens on it)."""
    return free_port()


@dataclass
class Fault:
    """One injected fault; ``times=None`` means every time it matches."""

    point: str
    action: str = "reply"
    reply: str = ""
    match: str = ""
    times: int | None = None
    seconds: float = 30.0
    hits: int = 0

    def __post_init__(self):
        self.point = self.point.upper()
        if self.point not in FAULT_POINTS:
            raise ValueError(f"unknown fault point {self.point!r}; use one of {sorted(FAULT_POINTS)}")
        if self.action not in FAULT_ACTIONS:
            raise ValueError(f"unknown fault action {self.action!r}; use one of {sorted(FAULT_ACTIONS)}")
        if self.action == "reply" and not (self.reply[:3].isdigit() and len(self.reply) >= 3):
            raise ValueError("a 'reply' fault needs a reply that starts with a 3-digit code")
        if not 0 <= self.seconds <= MAX_HANG_SECONDS:
            raise ValueError(f"hang seconds must be between 0 and {MAX_HANG_SECONDS}")


@dataclass(frozen=True)
class Received:
    """An envelope the server accepted (250 after DATA)."""

    mail_from: str
    rcpt_tos: tuple
    content: bytes
    auth_user: str | None
    tls: bool
    received_at: float = field(default_factory=time.time)
    mail_options: tuple = ()  # MAIL FROM parameters, upper-cased (SIZE=..., BODY=8BITMIME, SMTPUTF8)

    @property
    def message(self):
        return email.message_from_bytes(self.content, policy=email.policy.default)


class _Dropped(BaseException):
    """Ends a client session on purpose (drop/hang faults).

    A BaseException so that aiosmtpd's per-command ``except Exception`` does not
    turn it into a 500 reply on a closed connection.
    """


class _Recorder:
    """aiosmtpd handler: records accepted envelopes, applies MESSAGE faults."""

    def __init__(self, server):
        self._server = server

    async def handle_EHLO(self, smtp, session, envelope, hostname, responses):
        """aiosmtpd's own EHLO lines, plus PIPELINING when the fixture advertises it."""
        session.host_name = hostname  # what aiosmtpd does itself when no hook is set
        if self._server.pipelining:
            responses = [*responses[:-1], "250-PIPELINING", responses[-1]]
        return responses

    async def handle_DATA(self, smtp, session, envelope):
        fault = self._server._take_fault("MESSAGE", envelope.original_content or envelope.content or b"")
        if fault is not None:
            return await smtp._apply_fault(fault)
        if self._server.delay:
            await asyncio.sleep(self._server.delay)
        auth_user = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        self._server._record(
            Received(
                mail_from=envelope.mail_from,
                rcpt_tos=tuple(envelope.rcpt_tos),
                content=envelope.original_content or envelope.content,
                auth_user=auth_user,
                tls=bool(session.ssl) or smtp._fixture_implicit_tls,
                mail_options=tuple(envelope.mail_options),
            )
        )
        return "250 2.0.0 OK queued"


class _FaultySMTP(SMTP):
    """aiosmtpd's SMTP with a fault check in front of every verb."""

    def __init__(self, handler, *, fixture, **kwargs):
        super().__init__(handler, **kwargs)
        self._fixture = fixture
        self._fixture_implicit_tls = fixture.tls == "implicit"
        for verb, method in list(self._smtp_methods.items()):
            if verb in FAULT_POINTS:
                self._smtp_methods[verb] = self._guard(verb, method)

    def _guard(self, verb, method):
        async def guarded(arg):
            fault = self._fixture._take_fault(verb, arg or "")
            if fault is None:
                return await method(arg)
            reply = await self._apply_fault(fault)
            await self.push(reply)
            if reply.startswith("421") and self.transport is not None:
                self.transport.close()

        return guarded

    async def auth_XOAUTH2(self, _server, args):  # noqa: N802 - aiosmtpd finds mechanisms by this name
        """SASL XOAUTH2: ``user=<mailbox>^Aauth=Bearer <access token>^A^A`` (base64)."""
        if len(args) == 1:
            blob = await self.challenge_auth("")
            if blob is MISSING:
                return AuthResult(success=False, handled=True)
        else:
            try:
                blob = base64.b64decode(args[1].encode(), validate=True)
            except (binascii.Error, ValueError):
                await self.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        fields_ = dict(part.split("=", 1) for part in blob.decode("utf-8", "replace").split("\x01") if "=" in part)
        user = fields_.get("user", "")
        bearer = fields_.get("auth", "")
        token = bearer[len("Bearer ") :] if bearer.startswith("Bearer ") else ""
        ok = bool(user and token) and bool(self._fixture.xoauth2(user, token))
        self._fixture._note_auth("XOAUTH2", user, ok)
        if ok:
            return AuthResult(success=True, handled=False, auth_data=LoginPassword(user.encode(), b""))
        # Gmail's way: an error challenge the client answers with an empty line, then 535
        error = json.dumps({"status": "401", "schemes": "Bearer", "scope": "https://mail.google.com/"})
        await self.challenge_auth(error)
        return AuthResult(success=False, handled=False, message="535 5.7.8 Username and Password not accepted.")

    async def _apply_fault(self, fault):
        """Act on a fault: return the reply to send, or end the session (drop, hang)."""
        if fault.action == "reply":
            return fault.reply
        if fault.action == "garbage":
            return "HELLO? this is not SMTP \x01\x02"
        if fault.action == "hang":
            await asyncio.sleep(fault.seconds)
        if self.transport is not None:
            self.transport.close()
        raise _Dropped()

    async def _handle_client(self):
        self._fixture._count_connection()
        try:
            await self._serve_client()
        finally:
            self._fixture._end_connection()

    async def _serve_client(self):
        try:
            fault = self._fixture._take_fault("CONNECT", "")
            if fault is not None:
                await self.push(await self._apply_fault(fault))
                if self.transport is not None:
                    self.transport.close()
                return
            await super()._handle_client()
        except _Dropped:
            return


class _FaultyController(Controller):
    def __init__(self, handler, fixture, **kwargs):
        self._fixture = fixture
        super().__init__(handler, **kwargs)

    def factory(self):
        return _FaultySMTP(self.handler, fixture=self._fixture, **self.SMTP_kwargs)


class SmtpServer:
    """A real SMTP server on 127.0.0.1 with AUTH, TLS and fault injection.

    :param credentials: ``{user: password}``; AUTH PLAIN and LOGIN are offered
        when given. Wrong credentials get ``535 5.7.8``.
    :param auth_required: refuse MAIL before a successful AUTH (``530``).
    :param tls: ``None`` (plain), ``"starttls"`` or ``"implicit"`` (TLS from the
        first byte, as on port 465).
    :param require_starttls: with ``tls="starttls"``, refuse commands before STARTTLS.
    :param delay: seconds to wait before accepting each message (a slow server).
    :param pipelining: advertise ESMTP PIPELINING (RFC 2920) in the EHLO reply.
    :param smtputf8: advertise SMTPUTF8 (internationalized addresses).
    :param xoauth2: ``(user, access_token) -> bool``: offer AUTH XOAUTH2 and accept what it accepts.
    :param auth_require_tls: refuse AUTH before TLS (``538``); default: with ``xoauth2`` and STARTTLS.
    """

    def __init__(
        self,
        credentials=None,
        auth_required=False,
        tls=None,
        require_starttls=False,
        cert=None,
        delay=0.0,
        pipelining=False,
        smtputf8=False,
        xoauth2=None,
        auth_require_tls=None,
    ):
        if tls not in (None, "starttls", "implicit"):
            raise ValueError("tls must be None, 'starttls' or 'implicit'")
        if auth_require_tls is None:
            auth_require_tls = bool(xoauth2) and tls == "starttls"
        if auth_require_tls and tls != "starttls":
            raise ValueError("auth_require_tls needs tls='starttls' (with implicit TLS, AUTH is always inside TLS)")
        self.xoauth2 = xoauth2
        self.credentials = dict(credentials or {})
        self.tls = tls
        self.delay = delay
        self.pipelining = pipelining
        self.cert = cert or (make_self_signed() if tls else None)
        self.host = LOOPBACK
        self.port = None
        self.messages = []
        self.connections = 0
        self.open_connections = 0  # client connections open right now
        self.peak_connections = 0  # most client connections open at the same time (since start or clear())
        self.auth_attempts = []
        self._faults = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._controller = None
        kwargs = {
            "hostname": LOOPBACK,
            "auth_require_tls": auth_require_tls,
            "auth_required": auth_required,
            "ready_timeout": 10.0,
            "enable_SMTPUTF8": smtputf8,
        }
        if not xoauth2:
            kwargs["auth_exclude_mechanism"] = ["XOAUTH2"]
        if self.credentials:
            kwargs["authenticator"] = self._authenticate
        if tls == "starttls":
            kwargs["tls_context"] = self.cert.server_context()
            kwargs["require_starttls"] = require_starttls
        elif tls == "implicit":
            kwargs["ssl_context"] = self.cert.server_context()
        self._controller_kwargs = kwargs

    # -- lifecycle ---------------------------------------------------------
    def start(self):
        if self._controller is not None:
            return self
        self.port = free_port()
        self._controller = _FaultyController(_Recorder(self), self, port=self.port, **self._controller_kwargs)
        self._controller.start()
        with self._lock:
            # the controller's own readiness probe is not a client connection
            self.connections = 0
            self.peak_connections = self.open_connections
        return self

    def stop(self):
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- faults ------------------------------------------------------------
    def add_fault(self, point, action="reply", reply="", match="", times=None, seconds=30.0):
        """Inject a fault at ``point`` (see the module docstring); returns it."""
        fault = Fault(point=point, action=action, reply=reply, match=match, times=times, seconds=seconds)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self):
        with self._lock:
            self._faults.clear()

    def _take_fault(self, point, arg):
        if isinstance(arg, bytes):
            arg = arg.decode("utf-8", "replace")
        with self._lock:
            for fault in self._faults:
                if fault.point != point or (fault.match and fault.match not in arg):
                    continue
                fault.hits += 1
                if fault.times is not None and fault.hits >= fault.times:
                    self._faults.remove(fault)
                return fault
        return None

    # -- records -----------------------------------------------------------
    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        ok = user in self.credentials and self.credentials[user] == password
        self._note_auth(mechanism, user, ok)
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    def _note_auth(self, mechanism, user, ok):
        with self._lock:
            self.auth_attempts.append((mechanism, user, ok))

    def _record(self, received):
        with self._arrived:
            self.messages.append(received)
            self._arrived.notify_all()

    def _count_connection(self):
        with self._lock:
            self.connections += 1
            self.open_connections += 1
            self.peak_connections = max(self.peak_connections, self.open_connections)

    def _end_connection(self):
        with self._lock:
            self.open_connections -= 1

    def wait_for(self, count, timeout=10.0):
        """Wait until at least ``count`` messages were accepted; True if they were."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._arrived.wait(remaining)
            return True

    def clear(self):
        with self._lock:
            self.messages.clear()
            self.auth_attempts.clear()
            self.connections = 0
            self.peak_connections = self.open_connections

    @property
    def message_ids(self):
        """The Message-Id of every accepted message, in order of arrival (duplicates kept)."""
        with self._lock:
            return [received.message["Message-Id"] for received in self.messages]

    @property
    def recipients(self):
        """Every accepted recipient, in order of arrival."""
        with self._lock:
            return [rcpt for received in self.messages for rcpt in received.rcpt_tos]
