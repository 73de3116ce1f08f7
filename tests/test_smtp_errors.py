"""Error classification: from reply tables, and from errors provoked for real on loopback."""

import smtplib
import socket
import ssl
from email.message import EmailMessage

import pytest

from smtp_routing.testing.smtpd import SmtpServer, closed_port
from smtp_routing.tools.smtp_errors import CATEGORIES, Outcome, classify, classify_reply, enhanced_status


@pytest.mark.parametrize(
    ("code", "text", "stage", "category"),
    [
        (535, "5.7.8 Authentication credentials invalid", "auth", "auth"),
        (534, "5.7.9 Application-specific password required", "auth", "password_retired"),  # fixed by OAuth
        (530, "5.7.0 Authentication required", "mail", "auth"),
        (550, "5.1.1 User unknown", "rcpt", "recipient_rejected"),
        (553, "5.1.3 Bad recipient address syntax", "rcpt", "recipient_rejected"),
        (550, "5.7.1 Sender address rejected: Access denied", "mail", "sender_rejected"),
        (553, "5.7.1 <a@b.example>: Sender address rejected: not owned by user c@b.example", "mail", "send_as_denied"),
        (
            554,
            "5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied",
            "data",
            "send_as_denied",
        ),
        (550, "5.7.60 SMTP; Client does not have permissions to send as this sender", "data", "send_as_denied"),
        (552, "5.3.4 Message size exceeds fixed maximum message size", "data", "too_large"),
        (552, "5.2.2 Mailbox full", "rcpt", "too_large"),
        (554, "5.7.1 Message rejected as spam", "data", "other"),
        (421, "4.7.0 Too many connections, try later", "connect", "temporary"),
        (450, "4.2.1 Mailbox busy", "rcpt", "temporary"),
        (451, "4.7.1 Rate limit exceeded", "data", "temporary"),
        (452, "4.5.3 Too many recipients", "rcpt", "temporary"),
        (-1, "garbage", "mail", "other"),
    ],
)
def test_classify_reply(code, text, stage, category):
    outcome = classify_reply(code, text, stage)
    assert outcome.category == category
    assert outcome.smtp_code == code
    assert outcome.category in CATEGORIES


def test_enhanced_status_extraction():
    assert enhanced_status("5.7.60 SMTP; Client does not have permissions") == "5.7.60"
    assert enhanced_status("User unknown") is None
    assert classify_reply(550, "5.1.1 User unknown", "rcpt").enhanced_status == "5.1.1"


def test_failover_and_retry_flags():
    assert Outcome("timeout").failover and Outcome("timeout").retry
    assert Outcome("auth").failover and not Outcome("auth").retry
    assert not Outcome("recipient_rejected").failover
    assert not Outcome("send_as_denied").failover


def test_wrapped_errors_are_unwrapped():
    class MailDeliveryException(Exception):
        pass

    try:
        try:
            raise smtplib.SMTPRecipientsRefused({"a@x.example": (550, b"5.1.1 User unknown")})
        except smtplib.SMTPException as inner:
            raise MailDeliveryException("Mail Delivery Failed", "...") from inner
    except MailDeliveryException as outer:
        outcome = classify(outer)
    assert (outcome.category, outcome.smtp_code, outcome.enhanced_status) == ("recipient_rejected", 550, "5.1.1")


def test_user_error_from_configuration():
    class UserError(Exception):
        pass

    assert classify(UserError("Missing SMTP Server")).category == "config"
    assert classify(AssertionError("No valid recipient")).category == "invalid_message"
    assert classify(socket.gaierror(-2, "Name or service not known")).category == "dns"
    assert classify(RuntimeError("boom")).text == "RuntimeError: boom"


def test_text_is_bounded_and_single_line():
    outcome = classify_reply(550, "5.1.1 " + "x\r\n" * 2000, "rcpt")
    assert len(outcome.text) <= 1000
    assert "\n" not in outcome.text


# -- errors provoked for real against the loopback server ------------------------
def _message():
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "alice@example.com", "bob@example.com", "x"
    msg.set_content("x")
    return msg


def _attempt(host, port, *, tls=None, user=None, password=None, timeout=3.0, context=None):
    """Connect, authenticate, send; return the Outcome of the error (or None on success)."""
    try:
        cls = smtplib.SMTP_SSL if tls == "ssl" else smtplib.SMTP
        kwargs = {"context": context} if tls == "ssl" else {}
        with cls(host, port, timeout=timeout, **kwargs) as client:
            if tls == "starttls":
                client.starttls(context=context)
            if user:
                client.login(user, password)
            client.send_message(_message())
    except Exception as error:  # noqa: BLE001 - classifying is the point
        return classify(error)
    return None


@pytest.fixture(scope="module")
def server():
    with SmtpServer(credentials={"alice": "s3cret"}) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _reset(request):
    if "server" in request.fixturenames:
        srv = request.getfixturevalue("server")
        srv.clear_faults()


def test_live_success(server):
    assert _attempt(server.host, server.port, user="alice", password="s3cret") is None


def test_live_wrong_password(server):
    outcome = _attempt(server.host, server.port, user="alice", password="nope")
    assert (outcome.category, outcome.smtp_code, outcome.enhanced_status) == ("auth", 535, "5.7.8")


def test_live_connection_refused():
    assert _attempt("127.0.0.1", closed_port()).category == "connection_refused"


def test_live_tls_against_plain_port(server):
    context = ssl.create_default_context()
    assert _attempt(server.host, server.port, tls="ssl", context=context, timeout=2).category == "tls"


def test_live_starttls_not_offered(server):
    outcome = _attempt(server.host, server.port, tls="starttls")
    assert outcome.category == "tls"


def test_live_untrusted_certificate():
    with SmtpServer(tls="implicit") as srv:
        outcome = _attempt(srv.host, srv.port, tls="ssl", context=ssl.create_default_context())
    assert outcome.category == "tls"
    assert "certificate" in outcome.text.lower()


def test_live_timeout(server):
    server.add_fault("CONNECT", action="hang", seconds=3)
    assert _attempt(server.host, server.port, timeout=0.3).category == "timeout"


def test_live_drop_during_data(server):
    server.add_fault("MESSAGE", action="drop")
    assert _attempt(server.host, server.port).category == "connection_refused"


@pytest.mark.parametrize(
    ("point", "reply", "category"),
    [
        ("RCPT", "550 5.1.1 User unknown", "recipient_rejected"),
        ("MESSAGE", "552 5.3.4 Message too big for system", "too_large"),
        ("MAIL", "421 4.7.0 Too many messages, slow down", "temporary"),
        ("RCPT", "452 4.5.3 Too many recipients", "temporary"),
        ("DATA", "451 4.3.0 Local error", "temporary"),
        ("MAIL", "554 5.2.0 SendAsDenied; alice@example.com not allowed to send as", "send_as_denied"),
        ("MESSAGE", "550 5.7.60 SMTP; Client does not have permissions to send as this sender", "send_as_denied"),
        ("MAIL", "550 5.7.1 Sender rejected", "sender_rejected"),
        ("MESSAGE", "554 5.7.1 Spam detected", "other"),
    ],
)
def test_live_reply_faults(server, point, reply, category):
    server.add_fault(point, reply=reply)
    outcome = _attempt(server.host, server.port)
    assert outcome.category == category
    assert outcome.smtp_code == int(reply[:3])
    assert outcome.text == reply[4:]


def test_configuration_error_wrapping_an_os_error_stays_configuration():
    class UserError(Exception):
        pass

    try:
        try:
            open("/nonexistent/ca.pem")
        except OSError as inner:
            raise UserError("The CA file cannot be read") from inner
    except UserError as outer:
        assert classify(outer).category == "config"


class _TokenRefused(Exception):
    """What the bridges raise when the OAuth token endpoint refuses: the provider's code as ``oauth_error``."""

    def __init__(self, error, status, description=""):
        super().__init__(f"{error}: {description}")
        self.oauth_error, self.oauth_status, self.oauth_description = error, status, description


class MailDeliveryException(Exception):  # Odoo's wrapper in send_email()
    pass


@pytest.mark.parametrize(
    ("error", "status", "category"),
    [
        ("invalid_grant", 400, "oauth_revoked"),
        ("invalid_client", 401, "oauth_revoked"),
        ("unauthorized_client", 400, "oauth_revoked"),
        ("temporarily_unavailable", 503, "temporary"),
        ("server_error", 500, "temporary"),
        ("unreachable", None, "temporary"),
        ("invalid_request", 400, "config"),
    ],
)
def test_token_endpoint_refusals_are_classified_by_the_providers_code(error, status, category):
    refused = _TokenRefused(error, status, "AADSTS700082: The refresh token has expired")
    outcome = classify(refused)
    assert outcome.category == category
    assert error in outcome.text
    # also when Odoo wraps it
    try:
        try:
            raise refused
        except _TokenRefused:
            raise MailDeliveryException("Mail Delivery Failed") from None
    except MailDeliveryException as wrapped:
        wrapped.__context__ = refused
        assert classify(wrapped).category == category


def test_a_revoked_sign_in_fails_over_but_is_not_retried_blindly():
    outcome = classify(_TokenRefused("invalid_grant", 400))
    assert outcome.failover and not outcome.retry


@pytest.mark.parametrize(
    ("code", "reply"),
    [
        (535, "5.7.139 Authentication unsuccessful, basic authentication is disabled. [BN9PR03CA0123]"),
        (550, "5.7.30 Basic authentication is not supported for Client Submission."),
        (534, "5.7.9 Application-specific password required. Learn more at https://support.google.com/mail/?p=x"),
    ],
)
def test_retired_password_sign_in_says_switch_to_oauth(code, reply):
    """Microsoft's and Google's refusals of a password for SMTP are their own category (the fix is OAuth, not a
    new password), and another server may still take the mail."""
    for stage in ("auth", "mail"):
        outcome = classify_reply(code, reply, stage)
        assert outcome.category == "password_retired", (stage, reply)
        assert outcome.failover
    error = smtplib.SMTPAuthenticationError(code, reply.encode())
    assert classify(error).category == "password_retired"


def test_an_ordinary_wrong_password_stays_an_authentication_failure():
    assert classify_reply(535, "5.7.8 Username and Password not accepted.", "auth").category == "auth"
    assert classify_reply(535, "5.7.3 Authentication unsuccessful", "auth").category == "auth"
