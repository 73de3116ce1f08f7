"""What went wrong with an SMTP attempt, as a stable category.

``classify(exception)`` and ``classify_reply(code, text)`` turn whatever smtplib,
ssl or the socket layer raised (directly, or wrapped by Odoo's
``MailDeliveryException``) into an :class:`Outcome`: a category, the SMTP reply
code, the enhanced status code (RFC 3463), the server's own words, and whether
another server (failover) or a later retry can help.

Categories (stable codes; the Odoo model translates their labels):

========================  ==============================================
auth                      authentication failed (535, 534, 530 after AUTH)
password_retired          the provider no longer takes a password for SMTP (Microsoft 5.7.139 / 5.7.30
                          "Basic authentication is not supported", Google 534 5.7.9 "Application-specific
                          password required"): switch the server to OAuth
oauth_revoked             the OAuth provider refused to renew the sign-in (invalid_grant:
                          revoked or expired consent; invalid_client: expired client secret)
connection_refused        nothing listens, or the server closed at once
dns                       the host name does not resolve
timeout                   no answer in time
tls                       TLS handshake, certificate or STARTTLS problem
sender_rejected           MAIL FROM refused (5xx)
send_as_denied            the account may not send as this From
recipient_rejected        RCPT TO refused (5xx)
too_large                 message over the server's size limit
temporary                 a 4xx reply: rate limited, greylisted, busy
config                    smtp_routing/Odoo configuration problem
invalid_message           no valid recipient or From in the message
other                     anything else
========================  ==============================================
"""

import re
import smtplib
import socket
import ssl
from dataclasses import dataclass

CATEGORIES = (
    "auth",
    "password_retired",
    "oauth_revoked",
    "connection_refused",
    "dns",
    "timeout",
    "tls",
    "sender_rejected",
    "send_as_denied",
    "recipient_rejected",
    "too_large",
    "temporary",
    "config",
    "invalid_message",
    "other",
)
# Another server may well succeed where this one failed.
FAILOVER_CATEGORIES = frozenset(
    {"auth", "password_retired", "oauth_revoked", "connection_refused", "dns", "timeout", "tls", "temporary"}
)
# Trying the same server again later may succeed.
RETRY_CATEGORIES = frozenset({"connection_refused", "dns", "timeout", "temporary"})

# Microsoft 365 and Google refusing a password for SMTP AUTH: the way in is OAuth now.
_PASSWORD_RETIRED = re.compile(
    r"\b5\.7\.139\b|\b5\.7\.30\b|basic authentication is (?:not supported|disabled)|"
    r"application-specific password required|\b5\.7\.9\b",
    re.IGNORECASE,
)
_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SEND_AS = re.compile(
    r"sendasdenied|send ?as ?denied|not allowed to send as|permissions? to send as|"
    r"\b5\.7\.60\b|\b5\.2\.252\b|sender address rejected: not owned by|not authori[sz]ed to send (?:as|on behalf)",
    re.IGNORECASE,
)
_TOO_LARGE = re.compile(r"\b5\.3\.4\b|\b5\.2\.3\b|too (?:big|large)|size (?:limit|exceed)|exceeds? .*size", re.I)
_AUTH_TEXT = re.compile(r"\b5\.7\.(?:8|0|3|9|139)\b.*auth|authenticat", re.IGNORECASE)
MAX_TEXT = 1000
# OAuth 2.0 token endpoint errors (RFC 6749 5.2) after which only a person can help: sign in again
# (consent withdrawn, refresh token expired or revoked) or renew the application's client secret.
OAUTH_REVOKED_ERRORS = frozenset(
    {
        "invalid_grant",
        "invalid_client",
        "unauthorized_client",
        "access_denied",
        "consent_required",
        "interaction_required",
    }
)
OAUTH_TEMPORARY_ERRORS = frozenset({"temporarily_unavailable", "server_error", "unreachable", "slow_down"})


class MessageTooLarge(ValueError):
    """Refused before sending: the message is larger than the server accepts."""


@dataclass(frozen=True)
class Outcome:
    category: str
    smtp_code: int | None = None
    enhanced_status: str | None = None
    text: str = ""

    @property
    def failover(self):
        return self.category in FAILOVER_CATEGORIES

    @property
    def code(self):
        """The reply code and enhanced status as one shows them: ``550 5.1.1`` (empty without a reply)."""
        return " ".join(str(part) for part in (self.smtp_code, self.enhanced_status) if part)

    @property
    def retry(self):
        return self.category in RETRY_CATEGORIES


# Where classified() keeps an error's Outcome: on the exception object itself, which is what travels from the
# point of failure to whoever handles it (connect() or send_email() record it, the queue run decides, the
# test dialog shows it).
OUTCOME_ATTRIBUTE = "smtp_routing_outcome"


def classified(error, outcome=None):
    """The error's :class:`Outcome`, classified once: at the first call (the point of failure), then read
    from the error by every later one, so the queue, the history and the test dialog never disagree.

    ``outcome`` attaches an Outcome already known (an error wrapped in another carries the inner one's).

    >>> error = smtplib.SMTPSenderRefused(550, b"5.7.1 Not allowed", "a@x")
    >>> classified(error) is classified(error)
    True
    >>> classified(error).category, classified(error).code
    ('sender_rejected', '550 5.7.1')
    """
    known = getattr(error, OUTCOME_ATTRIBUTE, None)
    if outcome is None:
        if known is not None:
            return known
        outcome = classify(error)
    try:
        setattr(error, OUTCOME_ATTRIBUTE, outcome)
    except AttributeError:  # pylint: disable=except-pass
        pass  # an exception type without a __dict__: classified again next time, alike
    return outcome


def describe(outcome, label):
    """One failure in words, the same wherever it is shown: the category's ``label``, the code, the reply.

    >>> describe(Outcome("recipient_rejected", 550, "5.1.1", "5.1.1 No such user"), "Recipient rejected")
    'Recipient rejected - 550 5.1.1 - 5.1.1 No such user'
    >>> describe(Outcome("timeout", text="timed out"), "Timeout")
    'Timeout - timed out'
    """
    return " - ".join(part for part in (label, outcome.code, outcome.text) if part)


def _text(value):
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return " ".join(str(value or "").split())[:MAX_TEXT]


def enhanced_status(text):
    """The first RFC 3463 enhanced status code in a reply text, e.g. ``5.7.60``."""
    match = _ENHANCED.search(text or "")
    return ".".join(match.groups()) if match else None


def classify_reply(code, text, stage=None):
    """Category of a negative SMTP reply.

    ``stage`` is the command that got it: ``connect``, ``auth``, ``mail``,
    ``rcpt`` or ``data`` (None when unknown).

    >>> classify_reply(550, "5.1.1 User unknown", "rcpt").category
    'recipient_rejected'
    >>> classify_reply(554, "5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException", "data").category
    'send_as_denied'
    >>> classify_reply(421, "4.7.0 Too many connections").category
    'temporary'
    >>> classify_reply(535, "5.7.139 Authentication unsuccessful, basic authentication is disabled.", "auth").category
    'password_retired'
    >>> classify_reply(534, "5.7.9 Application-specific password required.", "auth").category
    'password_retired'
    """
    text = _text(text)
    status = enhanced_status(text)
    code = int(code) if code is not None else None
    if code is not None and code < 0:
        category = "other"
    elif code is not None and code >= 500 and _PASSWORD_RETIRED.search(text):
        category = "password_retired"
    elif _SEND_AS.search(text):
        category = "send_as_denied"
    elif code is not None and 400 <= code < 500:
        category = "temporary"
    elif code in (534, 535, 538) or stage == "auth" or (code == 530 and _AUTH_TEXT.search(text)):
        category = "auth"
    elif code == 552 or _TOO_LARGE.search(text):
        category = "too_large"
    elif stage == "mail":
        category = "sender_rejected"
    elif stage == "rcpt":
        category = "recipient_rejected"
    else:
        category = "other"
    return Outcome(category, code, status, text)


def classify_token_error(status, error, description=""):
    """Category of a token endpoint's refusal: ``status`` is the HTTP status (None: no answer).

    >>> classify_token_error(400, "invalid_grant", "AADSTS700082: expired").category
    'oauth_revoked'
    >>> classify_token_error(401, "invalid_client").category
    'oauth_revoked'
    >>> classify_token_error(503, "temporarily_unavailable").category
    'temporary'
    >>> classify_token_error(None, "unreachable").category
    'temporary'
    >>> classify_token_error(400, "invalid_request").category
    'config'
    """
    if error in OAUTH_REVOKED_ERRORS:
        category = "oauth_revoked"
    elif error in OAUTH_TEMPORARY_ERRORS or status is None or status >= 500 or status == 429:
        category = "temporary"
    else:
        category = "config"
    text = _text(": ".join(part for part in (str(status or ""), error or "", description or "") if part))
    return Outcome(category, None, None, text)


def _is_token_error(error):
    """A refusal of the OAuth token endpoint: an exception with an ``oauth_error`` attribute."""
    return getattr(error, "oauth_error", None) is not None


def _is_config_error(error):
    """Odoo's UserError/ValidationError: a configuration problem, whatever lower error it wraps."""
    return type(error).__name__ in ("UserError", "ValidationError")


def _unwrap(error):
    """The root error behind Odoo's MailDeliveryException / UserError wrappers."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if _is_token_error(error):
            return error
        if isinstance(error, (smtplib.SMTPException, OSError, ssl.SSLError, AssertionError)) or _is_config_error(error):
            return error
        inner = error.__cause__ or error.__context__
        if inner is None:
            return error
        error = inner
    return error


def _is_tls_error(error):
    if isinstance(error, ssl.SSLError):
        return True
    module = type(error).__module__ or ""
    return module.startswith("OpenSSL")  # pyOpenSSL errors (certificate auth in Odoo)


# SMTP reply exceptions and the command that got the reply (most specific first).
_REPLY_STAGES = (
    (smtplib.SMTPSenderRefused, "mail"),
    (smtplib.SMTPAuthenticationError, "auth"),
    (smtplib.SMTPDataError, "data"),
    (smtplib.SMTPConnectError, "connect"),
    (smtplib.SMTPResponseException, None),
)


def _classify_recipients_refused(error):
    refusals = list(error.recipients.values())
    code, text = refusals[0] if refusals else (None, "")
    outcome = classify_reply(code, text, "rcpt")
    if len(refusals) > 1:
        text = _text(f"{len(refusals)} recipients refused; first: {outcome.text}")
        outcome = Outcome(outcome.category, outcome.smtp_code, outcome.enhanced_status, text)
    return outcome


def _classify_transport(root):
    """Errors below SMTP: sockets, DNS, TLS, a closed connection; None if not one."""
    if isinstance(root, smtplib.SMTPNotSupportedError):
        return Outcome("tls" if "starttls" in str(root).lower() else "other", text=_text(root))
    if isinstance(root, smtplib.SMTPServerDisconnected):
        if "timed out" in str(root).lower():
            return Outcome("timeout", text=_text(root))
        return Outcome("connection_refused", text=_text(root) or "connection closed by the server")
    if isinstance(root, socket.gaierror):
        return Outcome("dns", text=_text(root))
    if isinstance(root, (socket.timeout, TimeoutError)):
        return Outcome("timeout", text=_text(root) or "timed out")
    if _is_tls_error(root):
        return Outcome("tls", text=_text(root))
    if isinstance(root, OSError) and (root.errno is not None or isinstance(root, ConnectionError)):
        return Outcome("connection_refused", text=_text(root))
    return None


def refused_recipients(error):
    """``{address: (code, reply)}`` when ``error`` is a refusal of the message's recipients at RCPT, else None.

    A 421 is left out (None): the server closes the session, so it is a server failure.

    >>> refused_recipients(smtplib.SMTPRecipientsRefused({"a@x": (450, b"4.2.0 Greylisted")}))
    {'a@x': (450, b'4.2.0 Greylisted')}
    >>> refused_recipients(smtplib.SMTPRecipientsRefused({"a@x": (421, b"Bye")})) is None
    True
    """
    root = _unwrap(error)
    if not isinstance(root, smtplib.SMTPRecipientsRefused) or not root.recipients:
        return None
    if any(code == 421 for code, _text in root.recipients.values()):
        return None
    return dict(root.recipients)


def classify(error):
    """Category of an exception raised while connecting or sending."""
    root = _unwrap(error)
    if _is_token_error(root):
        return classify_token_error(
            getattr(root, "oauth_status", None), root.oauth_error, getattr(root, "oauth_description", "")
        )
    if isinstance(root, MessageTooLarge):
        return Outcome("too_large", text=_text(root))
    if isinstance(root, smtplib.SMTPRecipientsRefused):
        return _classify_recipients_refused(root)
    for exception_class, stage in _REPLY_STAGES:
        if isinstance(root, exception_class):
            outcome = classify_reply(root.smtp_code, root.smtp_error, stage)
            if stage == "connect" and outcome.category == "other":
                outcome = Outcome("connection_refused", outcome.smtp_code, outcome.enhanced_status, outcome.text)
            return outcome
    outcome = _classify_transport(root)
    if outcome is not None:
        return outcome
    if isinstance(root, AssertionError):
        return Outcome("invalid_message", text=_text(root))
    if _is_config_error(root):
        return Outcome("config", text=_text(root.args[0] if root.args else root))
    if isinstance(root, smtplib.SMTPException):
        return Outcome("other", text=_text(root))
    return Outcome("other", text=_text(f"{type(root).__name__}: {root}"))
