"""The loopback SMTP fixture behaves like a real server: every later test relies on it."""

import smtplib
import socket
import ssl
import time
from email.message import EmailMessage

import pytest

from smtp_routing.testing.smtpd import Fault, SmtpServer, closed_port

TIMEOUT = 5


def _message(to="bob@example.com", sender="alice@example.com", subject="hello"):
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content("body text")
    return msg


@pytest.fixture
def server():
    with SmtpServer(credentials={"alice": "s3cret"}) as srv:
        yield srv


def test_plain_delivery_is_recorded(server):
    with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
        refused = client.send_message(_message(to="bob@example.com, carol@example.com"))
    assert refused == {}
    assert server.wait_for(1)
    received = server.messages[0]
    assert received.mail_from == "alice@example.com"
    assert received.rcpt_tos == ("bob@example.com", "carol@example.com")
    assert received.message["Subject"] == "hello"
    assert received.auth_user is None
    assert received.tls is False
    assert server.connections == 1


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_mechanisms_accept_good_credentials(server, mechanism):
    with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
        client.ehlo()
        assert mechanism in client.esmtp_features["auth"].split()
        auth_method = {"PLAIN": client.auth_plain, "LOGIN": client.auth_login}[mechanism]
        client.user, client.password = "alice", "s3cret"
        code, _ = client.auth(mechanism, auth_method)
        assert code == 235
        client.send_message(_message())
    assert server.wait_for(1)
    assert server.messages[0].auth_user == "alice"
    assert server.auth_attempts == [(mechanism, "alice", True)]


def test_wrong_password_gets_535(server):
    with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as caught:
            client.login("alice", "wrong")
    assert caught.value.smtp_code == 535
    assert server.auth_attempts[-1][1:] == ("alice", False)


def test_auth_required_refuses_anonymous_mail():
    with SmtpServer(credentials={"alice": "s3cret"}, auth_required=True) as srv:
        with smtplib.SMTP(srv.host, srv.port, timeout=TIMEOUT) as client:
            with pytest.raises(smtplib.SMTPSenderRefused) as caught:
                client.send_message(_message())
        assert caught.value.smtp_code == 530
        assert srv.messages == []


def test_starttls_with_verified_certificate():
    with SmtpServer(credentials={"alice": "s3cret"}, tls="starttls", require_starttls=True) as srv:
        with smtplib.SMTP(srv.host, srv.port, timeout=TIMEOUT) as client:
            client.starttls(context=srv.cert.client_context())
            client.login("alice", "s3cret")
            client.send_message(_message())
        assert srv.wait_for(1)
        assert srv.messages[0].tls is True


def test_starttls_required_refuses_plain_commands():
    with SmtpServer(tls="starttls", require_starttls=True) as srv:
        with smtplib.SMTP(srv.host, srv.port, timeout=TIMEOUT) as client:
            with pytest.raises(smtplib.SMTPSenderRefused) as caught:
                client.send_message(_message())
        assert caught.value.smtp_code == 530


def test_implicit_tls():
    with SmtpServer(credentials={"alice": "s3cret"}, tls="implicit") as srv:
        with smtplib.SMTP_SSL(srv.host, srv.port, timeout=TIMEOUT, context=srv.cert.client_context()) as client:
            client.login("alice", "s3cret")
            client.send_message(_message())
        assert srv.wait_for(1)
        assert srv.messages[0].tls is True


def test_self_signed_certificate_fails_default_verification():
    with SmtpServer(tls="implicit") as srv:
        with pytest.raises(ssl.SSLCertVerificationError):
            smtplib.SMTP_SSL(srv.host, srv.port, timeout=TIMEOUT, context=ssl.create_default_context())


def test_plain_client_against_implicit_tls_port_fails():
    with SmtpServer(tls="implicit") as srv:
        with pytest.raises((smtplib.SMTPServerDisconnected, socket.timeout, ConnectionResetError)):
            smtplib.SMTP(srv.host, srv.port, timeout=1)


def test_closed_port_refuses_connection():
    with pytest.raises(ConnectionRefusedError):
        smtplib.SMTP("127.0.0.1", closed_port(), timeout=TIMEOUT)


def test_connect_drop(server):
    server.add_fault("CONNECT", action="drop")
    with pytest.raises(smtplib.SMTPServerDisconnected):
        smtplib.SMTP(server.host, server.port, timeout=TIMEOUT)
    assert server.connections == 1


def test_connect_hang_times_out(server):
    server.add_fault("CONNECT", action="hang", seconds=5)
    started = time.monotonic()
    # smtplib reports a time-out while reading the greeting as a disconnection
    with pytest.raises(smtplib.SMTPServerDisconnected, match="timed out"):
        smtplib.SMTP(server.host, server.port, timeout=0.5)
    assert time.monotonic() - started < 3


def test_connect_reply_421(server):
    server.add_fault("CONNECT", reply="421 4.3.2 Service not available, closing")
    with pytest.raises(smtplib.SMTPConnectError) as caught:
        smtplib.SMTP(server.host, server.port, timeout=TIMEOUT)
    assert caught.value.smtp_code == 421


@pytest.mark.parametrize(
    ("point", "reply", "exception"),
    [
        ("MAIL", "421 4.7.0 Try again later, closing", smtplib.SMTPSenderRefused),
        ("MAIL", "451 4.3.0 Temporary local problem", smtplib.SMTPSenderRefused),
        ("MAIL", "554 5.2.0 SendAsDenied; not allowed to send as alice@example.com", smtplib.SMTPSenderRefused),
        ("RCPT", "452 4.5.3 Too many recipients", smtplib.SMTPRecipientsRefused),
        ("RCPT", "550 5.1.1 User unknown", smtplib.SMTPRecipientsRefused),
        ("DATA", "451 4.7.1 Rate limited, slow down", smtplib.SMTPDataError),
        ("MESSAGE", "552 5.3.4 Message too big", smtplib.SMTPDataError),
        ("MESSAGE", "554 5.7.1 Message rejected as spam", smtplib.SMTPDataError),
    ],
)
def test_reply_fault_at_chosen_command(server, point, reply, exception):
    server.add_fault(point, reply=reply)
    with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
        with pytest.raises(exception) as caught:
            client.send_message(_message())
    error = caught.value
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        code, text = error.recipients["bob@example.com"]
    else:
        code, text = error.smtp_code, error.smtp_error
    assert code == int(reply[:3])
    assert text.decode() == reply[4:]
    assert server.messages == []


def test_auth_fault_535(server):
    server.add_fault("AUTH", reply="535 5.7.3 Authentication unsuccessful")
    with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as caught:
            client.login("alice", "s3cret")
    assert caught.value.smtp_code == 535


def test_fault_matching_one_recipient_only(server):
    server.add_fault("RCPT", reply="550 5.1.1 User unknown", match="ghost@")
    with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
        refused = client.send_message(_message(to="bob@example.com, ghost@example.com"))
    assert refused == {"ghost@example.com": (550, b"5.1.1 User unknown")}
    assert server.wait_for(1)
    assert server.messages[0].rcpt_tos == ("bob@example.com",)


def test_fault_times_then_recovers(server):
    server.add_fault("MAIL", reply="451 4.3.0 Try later", times=2)
    outcomes = []
    for _ in range(3):
        with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
            try:
                client.send_message(_message())
                outcomes.append("sent")
            except smtplib.SMTPSenderRefused as error:
                outcomes.append(error.smtp_code)
    assert outcomes == [451, 451, "sent"]
    assert server.wait_for(1)


def test_drop_after_message_content(server):
    server.add_fault("MESSAGE", action="drop")
    client = smtplib.SMTP(server.host, server.port, timeout=TIMEOUT)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.send_message(_message())
    client.close()
    assert server.messages == []


def test_hang_at_data_times_out(server):
    server.add_fault("DATA", action="hang", seconds=5)
    client = smtplib.SMTP(server.host, server.port, timeout=0.5)
    with pytest.raises((socket.timeout, TimeoutError, smtplib.SMTPServerDisconnected)):
        client.send_message(_message())
    client.close()
    assert server.messages == []


def test_garbage_reply(server):
    server.add_fault("MAIL", action="garbage")
    with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as caught:
            client.send_message(_message())
    assert caught.value.smtp_code == -1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"point": "BOGUS"},
        {"point": "RCPT", "action": "explode"},
        {"point": "RCPT", "reply": "no code"},
        {"point": "CONNECT", "action": "hang", "seconds": 10_000},
    ],
)
def test_fault_validation(kwargs):
    with pytest.raises(ValueError):
        Fault(**kwargs)


def test_tls_argument_validation():
    with pytest.raises(ValueError):
        SmtpServer(tls="ssl")


def test_slow_server_delay_and_message_ids():
    with SmtpServer(delay=0.2) as srv:
        started = time.monotonic()
        with smtplib.SMTP(srv.host, srv.port, timeout=TIMEOUT) as client:
            msg = _message()
            msg["Message-Id"] = "<one@test>"
            client.send_message(msg)
        assert time.monotonic() - started >= 0.2
        assert srv.message_ids == ["<one@test>"]
