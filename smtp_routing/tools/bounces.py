"""Bounce reports: who bounced, why, and which mail it was, as plain values.

``parse(message)`` reads a bounce that came back to the bounce alias or the
catch-all (an ``email.message.Message``, or its bytes) and returns a
:class:`BounceReport`:

- the standard form, ``multipart/report; report-type=delivery-status``
  (RFC 3464, and RFC 6533's ``message/global-delivery-status``): one
  :class:`RecipientBounce` per recipient with ``Action: failed`` or
  ``delayed``, its ``Status`` (RFC 3463) and ``Diagnostic-Code``;
- the common forms that carry no usable report, read from their text:
  Postfix and qmail (``<user@example.com>: ... said: 550 ...``), Exim
  (``X-Failed-Recipients`` and ``SMTP error from remote mail server``), Gmail
  (``The response from the remote server was:``), Exchange and Microsoft 365
  (``Remote Server returned '550 5.1.10 ...'``);
- the original mail: the ``Message-Id`` of the returned message or headers
  (``message/rfc822``, ``text/rfc822-headers``, or quoted in the text), else the
  bounce's ``In-Reply-To``; and the mail id in the legacy Odoo bounce address
  ``bounce+<mail id>-<model>-<res id>@domain``.

Each recipient gets a class (stable codes; the Odoo model translates them):

======  =================================================================
hard    the address cannot receive mail: no such user, no such domain
soft    it may later: mailbox full, over quota, temporarily unavailable
policy  refused for what the mail or its sender is: spam or content block,
        DMARC/SPF/DKIM failure (5.7.26, 5.7.515), sender reputation
other   anything else, or nothing recognisable
======  =================================================================

Soft and policy bounces say nothing against the address itself: they do not
count towards the automatic blacklist (:func:`counts_towards_blacklist`), nor
does a report that only says the mail was delivered.

A garbled bounce never raises: it gives a report with what could be read
(possibly no recipient), ``form`` says which form was recognised.

>>> from email.message import EmailMessage
>>> bounce = EmailMessage()
>>> bounce["From"] = "MAILER-DAEMON@mx.example"
>>> bounce["X-Failed-Recipients"] = "ghost@example.com"
>>> bounce.set_content("SMTP error from remote mail server after RCPT TO:<ghost@example.com>:\\n"
...                    "    550 5.1.1 <ghost@example.com>: User unknown\\n")
>>> report = parse(bounce)
>>> first = report.recipients[0]
>>> (report.form, first.recipient, first.status, first.smtp_code, first.bounce_class)
('exim', 'ghost@example.com', '5.1.1', 550, 'hard')
>>> first.diagnostic
'550 5.1.1 <ghost@example.com>: User unknown'
>>> parse(b"not a bounce at all").recipients
()
"""

import email
import email.parser
import email.policy
import email.utils
import re
from dataclasses import dataclass

CLASSES = ("hard", "soft", "policy", "other")
# the classes that must not bring an address closer to the blacklist ("delivered": a success report)
NOT_COUNTED = frozenset({"soft", "policy", "delivered"})
MAX_DIAGNOSTIC = 1000
MAX_TEXT = 200_000  # bytes of human-readable text examined (a bounce may quote a whole mail)

DSN_TYPES = ("message/delivery-status", "message/global-delivery-status")
ORIGINAL_TYPES = ("message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers")

_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_REPLY_CODE = re.compile(r"^\s*([245]\d\d)(?:[ -]|$)")
_ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
_MSGID = re.compile(r"<[^<>\s]+@[^<>\s]+>")
_LEGACY_BOUNCE = re.compile(r"^[^+@\s]+\+(\d+)-[\w.]+-\d+@", re.ASCII)

_POLICY_TEXT = re.compile(
    r"spam|block ?list|black ?list|\bblocked\b|spamhaus|barracuda|spamcop|reputation|\bdmarc\b|\bspf\b|\bdkim\b|"
    r"unauthenticated|not authenticated|authentication level|content rejected|message content|unsolicited|"
    r"phish|virus|malware|banned|bulk sender|sender guidelines|policy violation|rejected by policy|"
    r"poor reputation|suspicious",
    re.IGNORECASE,
)
_SOFT_TEXT = re.compile(
    r"over ?quota|quota exceeded|exceeded (?:the |their |his |her )?(?:storage|quota)|mailbox (?:is )?full|"
    r"mailbox size limit|insufficient (?:system )?storage|out of storage|storage (?:space|quota)|"
    r"temporar(?:y|ily)|try again later|please try again|greylist|deferred|delivery time expired|"
    r"retry timeout exceeded|too many (?:messages|connections)|rate limit",
    re.IGNORECASE,
)
_HARD_TEXT = re.compile(
    r"user unknown|unknown user|no such (?:user|person|recipient|mailbox|address|account)|"
    r"(?:address|account|mailbox|user|recipient)(?: \S+)? does ?n[o']t exist|does not exist|"
    r"(?:recipient|user|mailbox|address) not found|unknown (?:recipient|mailbox|address)|"
    r"invalid (?:recipient|mailbox|address)|mailbox not available|mailbox unavailable|not listed in|"
    r"no mailbox here|no longer (?:active|available)|account (?:has been )?(?:disabled|deactivated|closed)|"
    r"recipientnotfound|host or domain name not found|domain not found|no such domain|"
    r"name service error|nxdomain|unrouteable address|address rejected",
    re.IGNORECASE,
)
# what introduces the receiving server's own words in the human-readable forms
_SAID = re.compile(
    r"(?:\bsaid:|Remote host said:|The response (?:from the remote server )?was:|"
    r"The error that the other server returned was:|SMTP error from remote (?:mail server|mailer) after [^:]*:|"
    r"Reported error:|Remote Server returned)\s*",
    re.IGNORECASE,
)
_ORIGINAL_MARKER = re.compile(
    r"^.*(?:original message|this is a copy of the message|undelivered message|message headers follow|"
    r"returned mail|original-headers).*$",
    re.IGNORECASE | re.MULTILINE,
)


@dataclass(frozen=True)
class RecipientBounce:
    """One recipient the report says was not (or not yet) delivered."""

    recipient: str | None
    status: str | None = None  # RFC 3463 enhanced status code, e.g. "5.1.1"
    action: str = "failed"  # RFC 3464 Action: failed or delayed
    diagnostic: str = ""  # the receiving server's words
    smtp_code: int | None = None
    remote_mta: str | None = None
    bounce_class: str = "other"


@dataclass(frozen=True)
class BounceReport:
    form: str  # dsn, postfix, qmail, exim, gmail, exchange, unknown
    recipients: tuple = ()
    original_message_id: str | None = None
    original_subject: str | None = None
    original_from: str | None = None
    legacy_mail_id: int | None = None  # from bounce+<mail id>-<model>-<res id>@domain
    reporting_mta: str | None = None
    delivered: tuple = ()  # recipients the report says were delivered, relayed or expanded


def decisive_class(report, address=None):
    """The class that decides how the bounce counts for ``address`` (the one Odoo found), or None.

    None means the report gives no reason to differ from stock Odoo.

    >>> report = BounceReport("dsn", (RecipientBounce("a@example.org", bounce_class="soft"),
    ...                               RecipientBounce("b@example.org", bounce_class="hard")))
    >>> decisive_class(report, "B@example.org"), decisive_class(report), decisive_class(BounceReport("unknown"))
    ('hard', None, None)
    >>> decisive_class(BounceReport("dsn", delivered=("c@example.org",)))
    'delivered'
    """
    if not report.recipients:
        return "delivered" if report.delivered else None
    if address:
        for entry in report.recipients:
            if entry.recipient and entry.recipient.lower() == address.lower():
                return entry.bounce_class
    classes = {entry.bounce_class for entry in report.recipients}
    return classes.pop() if len(classes) == 1 else None


def counts_towards_blacklist(bounce_class):
    """Whether a bounce of this class may bring its address closer to the blacklist (unknown: yes, as in Odoo).

    >>> [counts_towards_blacklist(c) for c in ("hard", "other", None, "soft", "policy", "delivered")]
    [True, True, True, False, False, False]
    """
    return bounce_class not in NOT_COUNTED


def _unescape(text):
    """Text parsed from bytes keeps undecodable bytes as surrogates: read them as UTF-8."""
    return str(text or "").encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _clean(value, limit=MAX_DIAGNOSTIC):
    return " ".join(_unescape(value).split())[:limit]


def status_code(text):
    """The most specific RFC 3463 status code in ``text``.

    >>> status_code("smtp; 550-5.1.1 The email account does not exist 550 5.1.1 gsmtp")
    '5.1.1'
    >>> status_code("5.0.0 (permanent failure); 550 5.7.26 Unauthenticated email")
    '5.7.26'
    >>> status_code("no code here") is None
    True
    """
    codes = [".".join(match.groups()) for match in _STATUS.finditer(text or "")]
    specific = [code for code in codes if not code.endswith(".0.0")]
    return (specific or codes or [None])[0]


def classify(status=None, diagnostic="", action="failed", smtp_code=None):
    """hard, soft, policy or other, from the status code first and the receiver's words second.

    >>> classify("5.1.1", "550 5.1.1 User unknown")
    'hard'
    >>> classify("5.2.2", "552 5.2.2 Mailbox full")
    'soft'
    >>> classify("5.7.26", "550 5.7.26 This mail is unauthenticated, which poses a security risk")
    'policy'
    >>> classify("5.7.515", "550 5.7.515 Access denied, sending domain does not meet the required authentication level")
    'policy'
    >>> classify("5.0.0", "550 No such person at this address.")
    'hard'
    >>> classify("4.4.7", "Delivery time expired", action="delayed")
    'soft'
    >>> classify("5.0.0", "554 Message rejected: blocked using zen.spamhaus.org")
    'policy'
    >>> classify(None, "")
    'other'
    """
    text = diagnostic or ""
    if status:
        klass, subject, detail = (int(part) for part in status.split("."))
        if subject == 7:
            return "policy"
        if klass == 4 or action == "delayed":
            return "policy" if _POLICY_TEXT.search(text) else "soft"
        if subject == 1 and detail in (1, 2, 3, 6, 10):
            return "hard"
        if subject == 2 and detail == 1:
            return "hard"  # mailbox disabled
        if subject == 2 and detail == 2:
            return "soft"  # mailbox full
        if subject == 4 and detail in (1, 4, 310):
            return "hard"  # no route to the domain, the domain does not exist
        if subject == 4 and detail == 7:
            return "soft"  # delivery time expired: the receiver kept saying "later"
    elif action == "delayed" or (smtp_code and 400 <= smtp_code < 500):
        return "policy" if _POLICY_TEXT.search(text) else "soft"
    if _SOFT_TEXT.search(text):
        return "soft"
    if _HARD_TEXT.search(text):
        return "hard"
    if _POLICY_TEXT.search(text):
        return "policy"
    return "other"


def _address(value):
    """The address in ``rfc822; <user@example.com>`` (or a bare one), lower-cased domain."""
    value = str(value or "")
    if ";" in value:
        value = value.split(";", 1)[1]
    match = _ADDRESS.search(value.strip().strip("<>"))
    if not match:
        return None
    local, _, domain = match.group(0).rpartition("@")
    return f"{local}@{domain.lower()}"


def _diagnostic_text(value):
    """``smtp; 550-5.1.1 line one 550-5.1.1 line two`` -> ``550 5.1.1 line one line two``."""
    value = _clean(value)
    kind, separator, rest = value.partition(";")
    if separator and re.fullmatch(r"[\w-]+", kind.strip()):
        value = rest.strip()
    head = _REPLY_CODE.match(value)
    if head:
        # multi-line replies repeat "550-5.1.1 " on every line: keep the first, drop the rest
        status = _STATUS.match(value[head.end() :].lstrip())
        repeat = rf"\s{head.group(1)}[ -]" + (re.escape(status.group(0)) + r"\s?" if status else "")
        first = head.group(1) + " " + value[head.end() :].lstrip()
        value = re.sub(repeat, " ", first).strip()
    return value[:MAX_DIAGNOSTIC]


def _smtp_code(diagnostic):
    match = _REPLY_CODE.match(diagnostic or "")
    return int(match.group(1)) if match else None


def _recipient(recipient, status=None, action="failed", diagnostic="", remote_mta=None):
    diagnostic = _diagnostic_text(diagnostic)
    code = _smtp_code(diagnostic)
    status = status or status_code(diagnostic)
    detailed = status_code(diagnostic)
    if status and status.endswith(".0.0") and detailed and detailed[0] == status[0]:
        status = detailed  # "Status: 5.0.0" with "550 5.1.1 ..." in the words: the words are more precise
    return RecipientBounce(
        recipient=recipient,
        status=status,
        action=action,
        diagnostic=diagnostic,
        smtp_code=code,
        remote_mta=_address_or_host(remote_mta),
        bounce_class=classify(status, diagnostic, action, code),
    )


# -- RFC 3464 -----------------------------------------------------------------------------------------------
def _blocks(part):
    """The header blocks of a delivery-status part, each as {lower-case name: text}."""
    payload = part.get_payload()
    blocks, texts = [], []
    if isinstance(payload, list):
        # message/delivery-status: one nested message per block; message/global-delivery-status: the
        # first block as headers and the others as its body
        for block in payload:
            fields = {name.lower(): _clean(value) for name, value in block.items()}
            if fields:
                blocks.append(fields)
            rest = None if block.is_multipart() else block.get_payload(decode=True)
            if rest and rest.strip():
                texts.append(rest.decode("utf-8", "replace"))
    else:
        texts.append((part.get_payload(decode=True) or b"").decode("utf-8", "replace"))
    for text in texts:
        for chunk in re.split(r"\r?\n[ \t]*\r?\n", text):
            parsed = email.parser.HeaderParser(policy=email.policy.compat32).parsestr(chunk.strip() + "\n")
            fields = {name.lower(): _clean(value) for name, value in parsed.items()}
            if fields:
                blocks.append(fields)
    return blocks


def _dsn_recipients(part):
    recipients, delivered, reporting_mta, envelope_from = [], [], None, None
    for fields in _blocks(part):
        if "reporting-mta" in fields:
            reporting_mta = _address_or_host(fields["reporting-mta"])
        envelope_from = envelope_from or fields.get("x-postfix-sender")
        if not any(name in fields for name in ("final-recipient", "original-recipient", "action", "status")):
            continue
        action = (fields.get("action") or "").split()[0].lower() if fields.get("action") else ""
        status = status_code(fields.get("status", ""))
        if not action:
            action = {"5": "failed", "4": "delayed"}.get((status or " ")[0], "failed")
        recipient = _address(fields.get("final-recipient")) or _address(fields.get("original-recipient"))
        if action not in ("failed", "delayed"):
            delivered.append(recipient)  # delivered, relayed, expanded: not a bounce
            continue
        recipients.append(
            _recipient(recipient, status, action, fields.get("diagnostic-code", ""), fields.get("remote-mta"))
        )
    return recipients, delivered, reporting_mta, envelope_from


def _address_or_host(value):
    value = str(value or "")
    return _clean(value.split(";", 1)[1] if ";" in value else value, 250) or None


# -- human-readable forms -------------------------------------------------------------------------------------
def _text_of(message):
    """The human-readable text of the bounce (its first text parts, before any returned mail)."""
    chunks, size = [], 0
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type in ORIGINAL_TYPES or content_type in DSN_TYPES:
            break
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        raw = part.get_payload(decode=True) or b""
        charset = part.get_content_charset() or "utf-8"
        try:
            text = raw.decode(charset, "replace")
        except LookupError:
            text = raw.decode("utf-8", "replace")
        if content_type == "text/html":
            if chunks:
                continue  # the plain alternative was already read
            text = re.sub(r"(?is)<(script|style).*?</\1>", " ", text)
            text = re.sub(r"(?i)<br\s*/?>|</(p|div|tr|li|h\d)>", "\n", text)
            text = re.sub(r"<[^>]+>", " ", text).replace("&nbsp;", " ").replace("&lt;", "<").replace("&gt;", ">")
        chunks.append(text)
        size += len(text)
        if size > MAX_TEXT:
            break
    return "\n".join(chunks)[:MAX_TEXT]


def _form(message, text):
    headers = " ".join(f"{name}: {value}" for name, value in message.items()).lower()
    sender = (message.get("From") or "").lower()
    if "x-ms-exchange" in headers or re.search(r"remote server returned|diagnostic information for admin", text, re.I):
        return "exchange"
    if "google" in sender or re.search(r"google tried to deliver|the response from the remote server was", text, re.I):
        return "gmail"
    if "qmail-send" in text:
        return "qmail"
    if message.get("X-Failed-Recipients") or "mail delivery software" in text.lower():
        return "exim"
    if "x-postfix" in headers or re.search(r"this is the mail system at host|^<[^>]+@[^>]+>:", text, re.I | re.M):
        return "postfix"
    return "unknown"


def _words_after(text, start):
    """The receiver's words from ``start``: up to a blank line, without Postfix's "(in reply to ...)"."""
    rest = text[start:]
    rest = re.split(r"\n[ \t]*\n", rest.lstrip("\n"), maxsplit=1)[0]
    rest = re.split(r"\(in reply to|\bGiving up on\b", rest, maxsplit=1, flags=re.I)[0]
    return _clean(rest.strip().strip("'\"<>"))


def _text_diagnostic(text, recipient=None):
    """The receiving server's words in the text, near ``recipient`` when given."""
    region = text
    if recipient:
        index = text.lower().find(recipient.lower())
        if index >= 0:
            region = text[index:]
    said = _SAID.search(region)
    if said:
        words = _words_after(region, said.end())
        if words:
            return words
    reply = re.search(r"^\s*([45]\d\d[ -][245]\.\d{1,3}\.\d{1,3}\b.*)$", region, re.M)
    if reply:
        return _words_after(region, reply.start(1))
    if recipient and region is not text:
        # Postfix and qmail: "<user@example.com>: the reason" with its continuation lines
        block = re.match(r"<?[^\s>]+>?:?[ \t]*(.*(?:\n[ \t]+.*)*)", region)
        qmail = re.search(r"\(#([245]\.\d{1,3}\.\d{1,3})\)", region[:1000])
        words = _clean(block.group(1) if block else "")
        if not words and qmail:
            words = _clean(region.split("\n", 2)[1] if region.count("\n") >= 1 else "")
        return words
    return ""


def _text_recipients(message, text, own_addresses):
    found = []
    header = message.get_all("X-Failed-Recipients") or []
    for value in header:
        found += [address for address in (_address(part) for part in str(value).split(",")) if address]
    if not found:
        patterns = (
            r"^<([^>\s]+@[^>\s]+)>:",  # Postfix, qmail
            r"following address(?:\(es\))? failed:\s*\n\s*<?([^\s<>]+@[^\s<>]+)",  # Exim
            r"wasn't delivered to\s+<?([^\s<>]+@[^\s<>]+?)>?\s+because",  # Gmail
            r"following recipients? failed[^:]*:\s*\n\s*<?([^\s<>]+@[^\s<>]+)",  # older Gmail
            r"Delivery has failed to these recipients or groups:\s*\n(?:\s*\n)*[^\n]*?<?([^\s<>()]+@[^\s<>()]+)",
            r"Your message to\s+<?([^\s<>]+@[^\s<>]+?)>?\s+couldn't be delivered",  # Microsoft 365
        )
        for pattern in patterns:
            for match in re.finditer(pattern, text, re.I | re.M):
                address = _address(match.group(1).rstrip(".,;:"))
                if address and address not in found:
                    found.append(address)
    return [address for address in found if address.lower() not in own_addresses]


# -- the original mail ----------------------------------------------------------------------------------------
def _original_headers(message):
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type not in ORIGINAL_TYPES:
            continue
        payload = part.get_payload()
        if isinstance(payload, list) and payload:
            return payload[0]
        raw = part.get_payload(decode=True) or b""
        return email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
    return None


def _original(message, text):
    """(Message-Id, Subject, From) of the mail that bounced."""
    headers = _original_headers(message)
    if headers is not None:
        ids = []
        for name in ("Message-Id", "X-Microsoft-Original-Message-ID"):
            ids += _MSGID.findall(_clean(headers.get(name, "")))
        subject = _clean(headers.get("Subject", ""), 250) or None
        sender = _clean(headers.get("From", ""), 250) or None
        if ids:
            return ids[0], subject, sender
    else:
        subject = sender = None
    marker = _ORIGINAL_MARKER.search(text)
    if marker:
        quoted = re.search(r"^\s*Message-ID:\s*(<[^<>\s]+@[^<>\s]+>)", text[marker.end() :], re.I | re.M)
        if quoted:
            return quoted.group(1), subject, sender
    in_reply_to = _MSGID.findall(_clean(message.get("In-Reply-To", "")))
    if len(in_reply_to) == 1:
        return in_reply_to[0], subject, sender
    return None, subject, sender


def _legacy_mail_id(message, envelope_from):
    candidates = [envelope_from or ""]
    for name in ("X-Original-To", "Delivered-To", "To"):
        candidates += [str(value) for value in message.get_all(name) or []]
    for candidate in candidates:
        for address in _ADDRESS.findall(candidate):
            match = _LEGACY_BOUNCE.match(address)
            if match:
                return int(match.group(1))
    return None


def _as_message(message):
    """A compat32 message: raw header text, no header objects that may choke on a malformed value."""
    if isinstance(message, str):
        message = message.encode("utf-8", "surrogateescape")
    if not isinstance(message, bytes | bytearray):
        if message.policy is email.policy.compat32:
            return message
        try:
            message = message.as_bytes(policy=email.policy.compat32)
        except Exception:  # noqa: BLE001 - keep the message as given
            return message
    return email.message_from_bytes(bytes(message), policy=email.policy.compat32)


def parse(message):
    """The :class:`BounceReport` of a bounce (an ``email.message.Message``, bytes or text). Never raises."""
    try:
        return _parse(_as_message(message))
    except Exception:  # noqa: BLE001 - a bounce is untrusted input; what cannot be read is reported as unknown
        return BounceReport("unknown")


def _parse(message):
    text = _text_of(message)
    recipients, delivered, reporting_mta, envelope_from = [], [], None, None
    dsn = next((part for part in message.walk() if part.get_content_type() in DSN_TYPES), None)
    if dsn is not None:
        recipients, delivered, reporting_mta, envelope_from = _dsn_recipients(dsn)
    own = {address.lower() for address in _ADDRESS.findall(" ".join(str(v) for v in message.get_all("To") or []))}
    if recipients:
        form = "dsn"
        listed = _text_recipients(message, text, own)
        if len(recipients) == 1 and not recipients[0].recipient and len(listed) == 1:
            # a report that lost its Final-Recipient: the text names the one recipient
            only = recipients[0]
            recipients = [_recipient(listed[0], only.status, only.action, only.diagnostic, only.remote_mta)]
        # a report without the receiver's words: take them from the text
        recipients = [
            _recipient(r.recipient, r.status, r.action, _text_diagnostic(text, r.recipient), r.remote_mta)
            if not r.diagnostic and text
            else r
            for r in recipients
        ]
    elif not delivered:
        form = _form(message, text)
        addresses = _text_recipients(message, text, own)
        recipients = [_recipient(address, None, "failed", _text_diagnostic(text, address)) for address in addresses]
        if not recipients:
            words = _text_diagnostic(text)
            if words:
                recipients = [_recipient(None, None, "failed", words)]
    else:
        form = "dsn"
    message_id, subject, sender = _original(message, text)
    return BounceReport(
        form=form,
        recipients=tuple(recipients),
        original_message_id=message_id,
        original_subject=subject,
        original_from=sender,
        legacy_mail_id=_legacy_mail_id(message, envelope_from),
        reporting_mta=reporting_mta,
        delivered=tuple(address for address in delivered if address),
    )
