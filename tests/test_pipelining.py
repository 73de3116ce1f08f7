"""ESMTP PIPELINING against real servers: aiosmtpd on 127.0.0.1, with and without PIPELINING advertised.

Every failure must raise what smtplib.sendmail raises in the same situation (so
smtp_errors classifies it the same way); each scenario runs smtplib first, then
pipelining, against the same server and fault, and compares.
"""

import copy
import email.generator
import email.policy
import io
import smtplib
import socket
import threading
import time
from email.message import EmailMessage

import pytest

from smtp_routing.testing.latency import LatencyProxy
from smtp_routing.testing.smtpd import SmtpServer
from smtp_routing.tools import pipelining
from smtp_routing.tools.headers import RawHeader
from smtp_routing.tools.smtp_errors import classify

TIMEOUT = 5
SENDER = "office@practice.example"
RECIPIENTS = ["ana@clients.example", "ghost@clients.example", "carl@clients.example"]
TO_HEADER = ", ".join(RECIPIENTS)


def _message(to=TO_HEADER, subject="Appointment", body="Dear client,\nsee you on Monday.\n"):
    msg = EmailMessage()
    msg["From"] = f"The Practice <{SENDER}>"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(body)
    return msg


def _connect(server, timeout=TIMEOUT):
    client = smtplib.SMTP(server.host, server.port, timeout=timeout)
    client.ehlo()
    return client


@pytest.fixture(params=[True, False], ids=["pipelining", "no-pipelining"])
def server(request):
    with SmtpServer(pipelining=request.param) as srv:
        yield srv


def test_the_fixture_advertises_pipelining_only_when_asked(server):
    with _connect(server) as client:
        assert client.has_extn("pipelining") is server.pipelining
        assert pipelining.supports_pipelining(client) is server.pipelining


def _read_reply(reader):
    """One SMTP reply (all its lines) from a raw socket: (code, last line)."""
    while True:
        line = reader.readline()
        assert line, "connection closed"
        if line[3:4] != b"-":
            return int(line[:3]), line


def test_aiosmtpd_answers_a_pipelined_burst_in_order():
    """The fixture really serves pipelined commands: one write, five replies in order, one refused."""
    with SmtpServer(pipelining=True) as srv, socket.create_connection((srv.host, srv.port), timeout=TIMEOUT) as sock:
        srv.add_fault("RCPT", reply="550 5.1.1 No such user", match="ghost@")
        reader = sock.makefile("rb")
        assert _read_reply(reader)[0] == 220
        sock.sendall(b"EHLO client.example\r\n")
        assert _read_reply(reader)[0] == 250
        burst = b"MAIL FROM:<%s>\r\n" % SENDER.encode()
        burst += b"".join(b"RCPT TO:<%s>\r\n" % address.encode() for address in RECIPIENTS)
        burst += b"DATA\r\n"
        sock.sendall(burst)
        assert [_read_reply(reader)[0] for _ in range(5)] == [250, 250, 550, 250, 354]
        sock.sendall(b"Subject: hi\r\n\r\nhello\r\n.\r\n")
        assert _read_reply(reader)[0] == 250
        assert srv.wait_for(1)
        assert srv.messages[0].rcpt_tos == ("ana@clients.example", "carl@clients.example")


def test_every_recipient_accepted(server):
    with _connect(server) as client:
        delivery = pipelining.send_message(client, _message())
    assert delivery.pipelined is server.pipelining
    assert delivery.accepted == tuple(RECIPIENTS)
    assert delivery.refused == {}
    assert all(reply.code == 250 for reply in delivery.recipients)
    assert (delivery.code, delivery.text) == (250, "2.0.0 OK queued")
    # pipelined: one burst and the message; one at a time: MAIL, three RCPT, DATA and the message
    assert delivery.round_trips == (2 if server.pipelining else 6)
    assert server.wait_for(1)
    assert server.messages[0].mail_from == SENDER
    assert server.messages[0].rcpt_tos == tuple(RECIPIENTS)


def test_the_bytes_sent_are_smtplibs(server):
    """Same envelope options and the same message bytes as smtplib.send_message (DKIM signs those bytes)."""
    msg = _message(body="Dear client,\n.a line that starts with a dot\nCafé at 10.\n")
    msg["Bcc"] = "secret@clients.example"
    with _connect(server) as client:
        client.send_message(msg)
        pipelining.send_message(client, msg)
    assert server.wait_for(2)
    stock, ours = server.messages
    assert ours.content == stock.content
    assert b"secret@" not in ours.content
    assert b"\r\n.a line that starts with a dot" in ours.content  # the dot was doubled on the wire, then undone
    assert ours.rcpt_tos == stock.rcpt_tos == (*RECIPIENTS, "secret@clients.example")
    assert ours.mail_options == stock.mail_options
    assert any(option.startswith("SIZE=") for option in ours.mail_options)


def test_a_recipient_refused_mid_pipeline(server):
    server.add_fault("RCPT", reply="550 5.1.1 No such user", match="ghost@")
    with _connect(server) as client:
        stock_refused = client.sendmail(SENDER, RECIPIENTS, b"Subject: a\r\n\r\nbody\r\n")
        delivery = pipelining.sendmail(client, SENDER, RECIPIENTS, b"Subject: a\r\n\r\nbody\r\n")
    assert delivery.refused == stock_refused == {"ghost@clients.example": (550, b"5.1.1 No such user")}
    assert delivery.accepted == ("ana@clients.example", "carl@clients.example")
    ghost = delivery.recipients[1]
    assert (ghost.address, ghost.code, ghost.text, ghost.accepted) == (
        "ghost@clients.example",
        550,
        "5.1.1 No such user",
        False,
    )
    assert delivery.round_trips == (2 if server.pipelining else 6)
    assert server.wait_for(2)
    assert server.messages[1].rcpt_tos == ("ana@clients.example", "carl@clients.example")


# (fault point, fault, hits per send, the exception smtplib raises, the session survives)
SCENARIOS = {
    "sender refused": ("MAIL", {"reply": "550 5.7.1 Sender rejected"}, 1, smtplib.SMTPSenderRefused, True),
    "send-as denied": ("MAIL", {"reply": "554 5.2.0 SendAsDenied; not allowed"}, 1, smtplib.SMTPSenderRefused, True),
    "421 at MAIL": ("MAIL", {"reply": "421 4.7.0 Try again later, closing"}, 1, smtplib.SMTPSenderRefused, False),
    "garbage at MAIL": ("MAIL", {"action": "garbage"}, 1, smtplib.SMTPSenderRefused, True),
    "all recipients refused": ("RCPT", {"reply": "550 5.1.1 No such user"}, 3, smtplib.SMTPRecipientsRefused, True),
    "all recipients 452": ("RCPT", {"reply": "452 4.5.3 Too many recipients"}, 3, smtplib.SMTPRecipientsRefused, True),
    "421 at a RCPT": (
        "RCPT",
        {"reply": "421 4.7.0 Too many errors, closing", "match": "ghost@"},
        1,
        smtplib.SMTPRecipientsRefused,
        False,
    ),
    "DATA refused": ("DATA", {"reply": "554 5.5.1 Transaction failed"}, 1, smtplib.SMTPDataError, True),
    "421 at DATA": ("DATA", {"reply": "421 4.3.2 Shutting down"}, 1, smtplib.SMTPDataError, False),
    "message too large": ("MESSAGE", {"reply": "552 5.3.4 Message too big"}, 1, smtplib.SMTPDataError, True),
    "message deferred": ("MESSAGE", {"reply": "451 4.3.0 Try again later"}, 1, smtplib.SMTPDataError, True),
    "send-as denied at the end": (
        "MESSAGE",
        {"reply": "554 5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException"},
        1,
        smtplib.SMTPDataError,
        True,
    ),
    "drop at RCPT": ("RCPT", {"action": "drop", "match": "ghost@"}, 1, smtplib.SMTPServerDisconnected, False),
    "drop at DATA": ("DATA", {"action": "drop"}, 1, smtplib.SMTPServerDisconnected, False),
    "drop after the message": ("MESSAGE", {"action": "drop"}, 1, smtplib.SMTPServerDisconnected, False),
}


def _attempt(send):
    try:
        send()
    except smtplib.SMTPException as error:
        return error
    raise AssertionError("no exception raised")


def _shape(error):
    return (
        type(error),
        getattr(error, "smtp_code", None),
        getattr(error, "smtp_error", None),
        getattr(error, "recipients", None),
    )


@pytest.mark.parametrize("scenario", SCENARIOS, ids=list(SCENARIOS))
def test_failures_raise_what_smtplib_raises(server, scenario):
    point, fault, hits, expected, survives = SCENARIOS[scenario]
    body = b"Subject: a\r\n\r\nbody\r\n"

    server.add_fault(point, times=hits, **fault)
    with _connect(server) as client:
        stock = _attempt(lambda: client.sendmail(SENDER, RECIPIENTS, body))

    server.add_fault(point, times=hits, **fault)
    client = _connect(server)
    try:
        ours = _attempt(lambda: pipelining.sendmail(client, SENDER, RECIPIENTS, body))
        assert isinstance(ours, expected)
        assert _shape(ours) == _shape(stock)
        assert classify(ours) == classify(stock)  # smtp_errors sees the same thing
        if survives:  # the replies were all read and the transaction reset: the session goes on
            delivery = pipelining.sendmail(client, SENDER, ["ana@clients.example"], body)
            assert delivery.accepted == ("ana@clients.example",)
        else:
            assert client.sock is None  # closed, as smtplib does on 421 or a drop
    finally:
        client.close()
    assert [received.rcpt_tos for received in server.messages] == ([("ana@clients.example",)] if survives else [])


def test_a_server_that_never_answers_times_out_like_smtplib(server):
    server.add_fault("RCPT", action="hang", seconds=3, times=1)
    with _connect(server, timeout=0.5) as client:
        stock = _attempt(lambda: client.sendmail(SENDER, RECIPIENTS, b"x\r\n"))
    server.add_fault("RCPT", action="hang", seconds=3, times=1)
    with _connect(server, timeout=0.5) as client:
        started = time.monotonic()
        ours = _attempt(lambda: pipelining.sendmail(client, SENDER, RECIPIENTS, b"x\r\n"))
        assert time.monotonic() - started < 2.5
    assert _shape(ours)[:2] == _shape(stock)[:2] == (smtplib.SMTPServerDisconnected, None)
    assert classify(ours).category == classify(stock).category == "timeout"


def test_many_recipients_go_in_bursts_of_a_hundred_commands(server):
    recipients = [f"client{i:03d}@clients.example" for i in range(150)]
    with _connect(server) as client:
        delivery = pipelining.sendmail(client, SENDER, recipients, b"Subject: many\r\n\r\nbody\r\n")
    assert delivery.accepted == tuple(recipients)
    # MAIL + 150 RCPT + DATA = 152 commands: two bursts, then the message
    assert delivery.round_trips == (3 if server.pipelining else 153)
    assert server.wait_for(1) and server.messages[0].rcpt_tos == tuple(recipients)


def test_a_string_message_gets_crlf_and_dot_stuffing(server):
    with _connect(server) as client:
        pipelining.sendmail(client, SENDER, "ana@clients.example", "Subject: s\n\n.hidden\nlast line")
    assert server.wait_for(1)
    assert server.messages[0].content == b"Subject: s\r\n\r\n.hidden\r\nlast line\r\n"


def test_pipelining_can_be_declined():
    with SmtpServer(pipelining=True) as srv, _connect(srv) as client:
        delivery = pipelining.sendmail(client, SENDER, RECIPIENTS, b"x\r\n", pipelining=False)
    assert delivery.pipelined is False and delivery.round_trips == 6


def test_line_breaks_in_options_are_refused_before_anything_is_sent(server):
    with _connect(server) as client:
        with pytest.raises(ValueError, match="newline"):
            pipelining.sendmail(client, SENDER, RECIPIENTS, b"x\r\n", rcpt_options=["NOTIFY=NEVER\r\nRSET"])
        assert pipelining.sendmail(client, SENDER, ["ana@clients.example"], b"x\r\n").accepted  # still in step
    if server.pipelining:
        assert len(server.messages) == 1


@pytest.mark.parametrize("pipelined", [True, False])
def test_internationalized_addresses_need_smtputf8(pipelined):
    msg = _message(to="José <josé@ejemplo.es>")
    with SmtpServer(pipelining=pipelined) as srv, _connect(srv) as client:
        with pytest.raises(smtplib.SMTPNotSupportedError) as stock:
            client.send_message(msg)
        with pytest.raises(smtplib.SMTPNotSupportedError) as ours:
            pipelining.send_message(client, msg)
        assert str(ours.value) == str(stock.value)
        assert pipelining.send_message(client, _message()).accepted  # nothing was sent: the session is fine
    with SmtpServer(pipelining=pipelined, smtputf8=True) as srv, _connect(srv) as client:
        delivery = pipelining.send_message(client, msg)
        assert delivery.accepted == ("josé@ejemplo.es",) and delivery.pipelined is pipelined
        assert srv.wait_for(1)
        assert {"SMTPUTF8", "BODY=8BITMIME"} <= set(srv.messages[0].mail_options)
        assert "josé@ejemplo.es" in srv.messages[0].content.decode()


class _OdooLikeConnection:
    """What ir.mail_server.connect() returns: a wrapper that keeps the smtplib object in __obj__."""

    def __init__(self, smtp):
        self.__obj__ = smtp


def test_odoos_session_wrapper_is_unwrapped():
    with SmtpServer(pipelining=True) as srv, _connect(srv) as client:
        session = _OdooLikeConnection(client)
        assert pipelining.raw_smtp(session) is client
        assert pipelining.send_message(session, _message()).pipelined
    assert srv.wait_for(1)


# -- through a 20 ms round trip ---------------------------------------------------------------------------
ONE_WAY = 0.010


@pytest.mark.parametrize("recipients", [1, 3])
def test_with_latency_a_pipelined_message_costs_two_round_trips(recipients):
    to_addrs = [f"client{i}@clients.example" for i in range(recipients)]
    with SmtpServer(pipelining=True) as srv, LatencyProxy(srv.port, one_way=ONE_WAY) as proxy:
        with smtplib.SMTP(proxy.host, proxy.port, timeout=TIMEOUT) as client:
            client.ehlo()
            proxy.reset_stats()
            started = time.perf_counter()
            delivery = pipelining.sendmail(client, SENDER, to_addrs, b"Subject: p\r\n\r\nbody\r\n")
            pipelined_seconds = time.perf_counter() - started
            pipelined_trips = proxy.round_trips

            proxy.reset_stats()
            started = time.perf_counter()
            client.sendmail(SENDER, to_addrs, b"Subject: s\r\n\r\nbody\r\n")  # smtplib, one command at a time
            sequential_seconds = time.perf_counter() - started
            sequential_trips = proxy.round_trips
        assert srv.wait_for(2)
    assert delivery.round_trips == pipelined_trips == 2
    assert sequential_trips == 3 + recipients  # MAIL, each RCPT, DATA, the message
    assert pipelined_seconds >= 2 * 2 * ONE_WAY
    assert sequential_seconds >= sequential_trips * 2 * ONE_WAY
    assert pipelined_seconds < sequential_seconds


def test_with_latency_a_refusal_mid_pipeline_still_costs_two_round_trips():
    with SmtpServer(pipelining=True) as srv, LatencyProxy(srv.port, one_way=ONE_WAY) as proxy:
        srv.add_fault("RCPT", reply="550 5.1.1 No such user", match="ghost@")
        with smtplib.SMTP(proxy.host, proxy.port, timeout=TIMEOUT) as client:
            client.ehlo()
            proxy.reset_stats()
            delivery = pipelining.sendmail(client, SENDER, RECIPIENTS, b"Subject: p\r\n\r\nbody\r\n")
            assert proxy.round_trips == delivery.round_trips == 2
        assert delivery.refused == {"ghost@clients.example": (550, b"5.1.1 No such user")}
        assert srv.wait_for(1) and srv.messages[0].rcpt_tos == ("ana@clients.example", "carl@clients.example")


def test_with_latency_a_refused_sender_costs_one_round_trip_and_a_reset():
    with SmtpServer(pipelining=True) as srv, LatencyProxy(srv.port, one_way=ONE_WAY) as proxy:
        srv.add_fault("MAIL", reply="550 5.7.1 Sender rejected", times=1)
        with smtplib.SMTP(proxy.host, proxy.port, timeout=TIMEOUT) as client:
            client.ehlo()
            proxy.reset_stats()
            with pytest.raises(smtplib.SMTPSenderRefused):
                pipelining.sendmail(client, SENDER, RECIPIENTS, b"x\r\n")
            assert proxy.round_trips == 2  # the burst, then RSET
            assert pipelining.sendmail(client, SENDER, RECIPIENTS, b"x\r\n").accepted == tuple(RECIPIENTS)


class _Scripted:
    """A minimal pipelining server that accepts DATA although it refused every recipient (RFC 2920 3.1 allows
    it; aiosmtpd never does): the client must then end the empty message with a lone dot, and reset."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lines = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.listener.settimeout(TIMEOUT)
        conn, _ = self.listener.accept()
        with conn, conn.makefile("rb") as reader:
            conn.settimeout(TIMEOUT)
            conn.sendall(b"220 scripted\r\n")
            replies = {b"EHLO": b"250-scripted\r\n250 PIPELINING\r\n", b"MAIL": b"250 OK\r\n"}
            replies.update({b"RCPT": b"550 5.1.1 No such user\r\n", b"DATA": b"354 Go ahead\r\n"})
            replies.update({b".": b"554 5.5.1 No valid recipients\r\n", b"RSET": b"250 OK\r\n"})
            replies.update({b"QUIT": b"221 Bye\r\n"})
            for line in reader:
                verb = line.split()[0].upper() if line.strip() else b""
                self.lines.append(verb)
                conn.sendall(replies.get(verb, b"500 What?\r\n"))
                if verb == b"QUIT":
                    return


def test_a_data_accepted_after_every_recipient_was_refused_is_ended_with_a_lone_dot():
    scripted = _Scripted()
    with smtplib.SMTP("127.0.0.1", scripted.port, timeout=TIMEOUT) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            pipelining.sendmail(client, SENDER, RECIPIENTS[:2], b"x\r\n")
    scripted.thread.join(TIMEOUT)
    assert set(refused.value.recipients) == set(RECIPIENTS[:2])
    assert scripted.lines == [b"EHLO", b"MAIL", b"RCPT", b"RCPT", b"DATA", b".", b"RSET", b"QUIT"]


# -- a signed message is flattened once ---------------------------------------------------------------
def _signed_shape(bcc=False):
    """Odoo's shape: SMTP policy, plain and HTML alternatives, an attachment, long and non-ASCII headers."""
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["Message-Id"] = "<signed-once@practice.example>"
    msg["Subject"] = "Réunion du comité: " + "ordre du jour " * 8
    msg["From"] = '"Office, Practice" <office@practice.example>'
    msg["To"] = ", ".join(f"Client {index} <client{index}@clients.example>" for index in range(6))
    if bcc:
        msg["Bcc"] = "hidden@clients.example"
    msg["MIME-Version"] = "1.0"
    msg.add_alternative("Dear client,\n.\nYour appointment is confirmed.\n", subtype="plain", charset="utf-8")
    msg.add_alternative("<p>Dear client,</p><p>Your appointment is confirmed.</p>", subtype="html", charset="utf-8")
    msg.add_attachment(b"%PDF-1.4 " + bytes(range(256)) * 4, "application", "pdf", filename="invoice.pdf")
    return msg


def _sign_like_the_addon(msg):
    """What ir.mail_server's DKIM signing does: flatten, remember those bytes, add the signature header."""
    buffer = io.BytesIO()
    email.generator.BytesGenerator(buffer).flatten(msg, linesep="\r\n")
    pipelining.remember_flattened(msg, buffer.getvalue())
    msg["DKIM-Signature"] = RawHeader("DKIM-Signature", "v=1; a=rsa-sha256; d=practice.example; s=s1; " * 4, 78)


def _fresh_bytes(msg):
    """The bytes smtplib.send_message would send (no Bcc), flattened from scratch."""
    outgoing = copy.copy(msg)
    del outgoing["Bcc"]
    outgoing.__dict__.pop("smtp_routing_flattened", None)
    buffer = io.BytesIO()
    email.generator.BytesGenerator(buffer).flatten(outgoing, linesep="\r\n")
    return buffer.getvalue()


def test_a_signed_message_is_sent_as_its_signed_bytes_without_a_second_flattening(monkeypatch):
    msg = _signed_shape()
    _sign_like_the_addon(msg)
    expected = _fresh_bytes(msg)
    calls = []
    original = email.generator.BytesGenerator.flatten
    monkeypatch.setattr(
        email.generator.BytesGenerator, "flatten", lambda self, *a, **k: calls.append(1) or original(self, *a, **k)
    )
    _from, _to, data, _options = pipelining.flatten(msg)
    assert calls == []
    assert data == expected
    assert b"DKIM-Signature: v=1;" in data.split(b"\r\n\r\n", 1)[0]


@pytest.mark.parametrize("change", ["replaced header", "removed header", "new payload", "bcc"])
def test_a_message_changed_after_signing_is_flattened_again(change):
    msg = _signed_shape(bcc=change == "bcc")
    _sign_like_the_addon(msg)
    if change == "replaced header":
        msg.replace_header("Subject", "Another subject")
    elif change == "removed header":
        del msg["MIME-Version"]
    elif change == "new payload":
        msg.set_payload(list(msg.get_payload()))
    _from, _to, data, _options = pipelining.flatten(msg)
    assert data == _fresh_bytes(msg)
    assert b"hidden@clients.example" not in data
