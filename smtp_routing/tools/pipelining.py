"""Send one message over an open SMTP session with ESMTP PIPELINING (RFC 2920).

Python's smtplib waits for the reply to every command: MAIL FROM, each RCPT
TO, DATA, then the message, about four round trips per message with one
recipient. Against a provider 50 ms away that is 200 ms of waiting per mail.
When the server advertises PIPELINING, :func:`sendmail` writes MAIL FROM,
every RCPT TO and DATA in one burst, reads their replies in order, then sends
the message and reads the final reply: two round trips whatever the number of
recipients (up to ``WINDOW`` commands per burst). Without PIPELINING it sends
one command at a time through smtplib's own ``mail()``, ``rcpt()`` and
``data()``, as ``smtplib.SMTP.sendmail`` does.

Both ways return a :class:`Delivery`: every recipient's reply (accepted, or
refused with code and text), the final reply, and how many round trips the
message cost. Failures raise what ``smtplib.SMTP.sendmail`` raises for the same
situation, so :mod:`smtp_routing.tools.smtp_errors` classifies them unchanged:

- ``SMTPSenderRefused``: MAIL FROM refused;
- ``SMTPRecipientsRefused``: every recipient refused (or a 421 during RCPT);
- ``SMTPDataError``: DATA or the message refused;
- ``SMTPServerDisconnected``: the connection dropped or timed out;
- ``SMTPNotSupportedError``: internationalized addresses and no SMTPUTF8.

As with smtplib, a 421 reply closes the session; other refusals reset the
transaction (RSET) and leave the session usable for the next message. One
difference: after a refused DATA command smtplib leaves the transaction open
(the next MAIL FROM would get "503 nested MAIL"); here it is reset too, so a
session can be reused.

Works on an ``smtplib.SMTP`` / ``SMTP_SSL`` object or on the ``SMTPConnection``
wrapper Odoo returns from ``ir.mail_server.connect()`` (through its ``__obj__``).

Framework-free: standard library only.
"""

import copy
import email.generator
import email.utils
import io
import re
import smtplib
from dataclasses import dataclass

# Commands per burst. Every reply waits in the socket buffers until we read it;
# 100 replies (a few kB) fit in any buffer, so a burst never deadlocks a server
# that writes its replies while we are still writing commands.
WINDOW = 100
ACCEPTED_RCPT = (250, 251)
CRLF = "\r\n"
_EOLS = re.compile(r"(?:\r\n|\n|\r(?!\n))")
_LEADING_DOT = re.compile(rb"(?m)^\.")


@dataclass(frozen=True)
class RecipientReply:
    """The server's answer to one RCPT TO."""

    address: str
    code: int
    text: str

    @property
    def accepted(self):
        return self.code in ACCEPTED_RCPT


@dataclass(frozen=True)
class Delivery:
    """One message handed to the server: per-recipient replies and the final reply."""

    recipients: tuple  # RecipientReply, in the order given
    code: int  # the reply to the end of the message (250)
    text: str
    pipelined: bool
    round_trips: int  # times the client waited for the server

    @property
    def accepted(self):
        return tuple(reply.address for reply in self.recipients if reply.accepted)

    @property
    def refused(self):
        """``{address: (code, reply bytes)}``: what ``smtplib.SMTP.sendmail`` returns."""
        return _refused(self.recipients)


def raw_smtp(session):
    """The smtplib object behind a session (Odoo's ``SMTPConnection`` keeps it in ``__obj__``)."""
    return getattr(session, "__obj__", session)


def supports_pipelining(session):
    """Whether the server advertised PIPELINING in its EHLO reply (says EHLO first if needed)."""
    smtp = raw_smtp(session)
    smtp.ehlo_or_helo_if_needed()
    return bool(smtp.does_esmtp and smtp.has_extn("pipelining"))


def send_message(session, msg, from_addr=None, to_addrs=None, mail_options=(), rcpt_options=(), pipelining=True):
    """``smtplib.SMTP.send_message`` with pipelining: an ``email.message.Message`` in, a :class:`Delivery` out.

    Envelope defaults, Bcc removal, Resent- headers and SMTPUTF8 handling are
    those of ``send_message``; the message is flattened with the same generator,
    so the bytes sent (and a DKIM signature over them) are the same.
    """
    smtp = raw_smtp(session)
    smtp.ehlo_or_helo_if_needed()
    from_addr, to_addrs, data, options = flatten(msg, from_addr, to_addrs, smtputf8=smtp.has_extn("smtputf8"))
    mail_options = (*mail_options, *options)
    return sendmail(session, from_addr, to_addrs, data, mail_options, rcpt_options, pipelining=pipelining)


def flatten(msg, from_addr=None, to_addrs=None, smtputf8=False):
    """What ``send_message`` puts on the wire: ``(from_addr, to_addrs, bytes, extra MAIL FROM options)``.

    Envelope defaults, Bcc removal, Resent- headers and SMTPUTF8 handling are
    those of ``smtplib.SMTP.send_message``; ``smtputf8``: whether the server
    offers it (internationalized addresses need it).
    """
    resent = msg.get_all("Resent-Date")
    if resent is None:
        prefix = ""
    elif len(resent) == 1:
        prefix = "Resent-"
    else:
        raise ValueError("message has more than one 'Resent-' header block")
    if from_addr is None:
        from_addr = msg[prefix + "Sender"] if (prefix + "Sender") in msg else msg[prefix + "From"]
        from_addr = email.utils.getaddresses([from_addr])[0][1]
    if to_addrs is None:
        fields = [value for value in (msg[prefix + "To"], msg[prefix + "Bcc"], msg[prefix + "Cc"]) if value is not None]
        to_addrs = [address for _name, address in email.utils.getaddresses(fields)]
    elif isinstance(to_addrs, str):
        to_addrs = [to_addrs]
    outgoing = copy.copy(msg)
    del outgoing["Bcc"]
    del outgoing["Resent-Bcc"]
    international = not "".join([from_addr, *to_addrs]).isascii()
    options = ()
    if international:
        if not smtputf8:
            raise smtplib.SMTPNotSupportedError(
                "One or more source or delivery addresses require internationalized email support, but the server "
                "does not advertise the required SMTPUTF8 capability"
            )
        options = ("SMTPUTF8", "BODY=8BITMIME")
    data = None if international else _flattened_before(outgoing)
    if data is None:
        with io.BytesIO() as buffer:
            if international:
                generator = email.generator.BytesGenerator(buffer, policy=msg.policy.clone(utf8=True))
            else:
                generator = email.generator.BytesGenerator(buffer)
            generator.flatten(outgoing, linesep=CRLF)
            data = buffer.getvalue()
    return from_addr, list(to_addrs), data, options


def remember_flattened(msg, data):
    """Keep the bytes ``msg`` flattens to now (``BytesGenerator`` with CRLF line ends, as :func:`flatten`
    writes it): a DKIM signature is computed over exactly these bytes, and the message is sent with only
    the signature added. :func:`flatten` then adds the headers written after this call to these bytes
    instead of flattening the whole message a second time."""
    msg.smtp_routing_flattened = (data, list(msg.raw_items()), msg.get_payload())


def _flattened_before(msg):
    """The bytes of ``msg`` from :func:`remember_flattened` plus the headers added since, or None when
    the message changed otherwise (a header replaced or removed, another payload)."""
    remembered = getattr(msg, "smtp_routing_flattened", None)
    if remembered is None:
        return None
    data, headers, payload = remembered
    current = list(msg.raw_items())
    if (
        msg.get_payload() is not payload
        or len(current) < len(headers)
        or any(
            now_name != then_name or now_value is not then_value
            for (now_name, now_value), (then_name, then_value) in zip(current, headers, strict=False)
        )
    ):
        return None
    end = data.find(b"\r\n\r\n")  # the blank line after the headers
    if end < 0 or not headers:
        return None
    policy = msg.policy.clone(linesep=CRLF)
    added = b"".join(policy.fold_binary(name, value) for name, value in current[len(headers) :])
    return data[: end + 2] + added + data[end + 2 :]


def sendmail(session, from_addr, to_addrs, msg, mail_options=(), rcpt_options=(), pipelining=True):
    """``smtplib.SMTP.sendmail`` with pipelining when the server offers it; returns a :class:`Delivery`.

    ``msg`` is bytes (sent as is) or an ASCII string (line ends normalized).
    ``pipelining=False`` sends one command at a time even when PIPELINING is offered.
    """
    smtp = raw_smtp(session)
    smtp.ehlo_or_helo_if_needed()
    if isinstance(to_addrs, str):
        to_addrs = [to_addrs]
    to_addrs = list(to_addrs)
    if isinstance(msg, str):
        msg = _EOLS.sub(CRLF, msg).encode("ascii")
    options = []
    if smtp.does_esmtp:
        if smtp.has_extn("size"):
            options.append("size=%d" % len(msg))
        options.extend(mail_options)
    # every command line is checked before the first is sent: a line break never leaves a transaction open
    commands = [_command("MAIL", f"FROM:{smtplib.quoteaddr(from_addr)}", options)]
    commands += [_command("RCPT", f"TO:{smtplib.quoteaddr(address)}", rcpt_options) for address in to_addrs]
    if pipelining and smtp.does_esmtp and smtp.has_extn("pipelining"):
        return _pipelined(smtp, from_addr, to_addrs, msg, options, [*commands, _command("DATA")])
    return _sequential(smtp, from_addr, to_addrs, msg, options, rcpt_options)


# -- the two ways ----------------------------------------------------------------------------------
def _sequential(smtp, from_addr, to_addrs, msg, options, rcpt_options):
    """One command per round trip, through smtplib's own commands (sendmail's order and checks)."""
    code, text = smtp.mail(from_addr, options)
    round_trips = 1
    if code != 250:
        _close_or_reset(smtp, code)
        raise smtplib.SMTPSenderRefused(code, text, from_addr)
    replies = []
    for address in to_addrs:
        code, text = smtp.rcpt(address, rcpt_options)
        round_trips += 1
        replies.append(RecipientReply(address, code, _decode(text)))
        if code == 421:
            smtp.close()
            raise smtplib.SMTPRecipientsRefused(_refused(replies))
    if not any(reply.accepted for reply in replies):
        _reset(smtp)
        raise smtplib.SMTPRecipientsRefused(_refused(replies))
    try:
        code, text = smtp.data(msg)
    except smtplib.SMTPDataError as error:  # DATA itself refused
        _close_or_reset(smtp, error.smtp_code)
        raise
    round_trips += 2
    if code != 250:
        _close_or_reset(smtp, code)
        raise smtplib.SMTPDataError(code, text)
    return Delivery(tuple(replies), code, _decode(text), pipelined=False, round_trips=round_trips)


def _pipelined(smtp, from_addr, to_addrs, msg, options, commands):
    """MAIL FROM, every RCPT TO and DATA (``commands``) in bursts of ``WINDOW``, then the message."""
    use_utf8_if_asked(smtp, options)
    recipients, round_trips = open_transaction(smtp, from_addr, to_addrs, commands)
    smtp.send(message_data(msg))
    return finish_transaction(smtp, recipients, round_trips + 1)


def use_utf8_if_asked(smtp, options):
    if any(option.lower() == "smtputf8" for option in options):  # as smtplib.SMTP.mail() does
        if not smtp.has_extn("smtputf8"):
            raise smtplib.SMTPNotSupportedError("SMTPUTF8 not supported by server")
        smtp.command_encoding = "utf-8"


def open_transaction(smtp, from_addr, to_addrs, commands, written=0):
    """Send ``commands`` (MAIL FROM, RCPT TO..., DATA) in bursts and read their replies, in order.

    The first ``written`` commands were already written by the caller (after the previous message's
    content, RFC 2920 3.1). Returns ``(recipient replies, round trips)`` once DATA got 354; raises what
    ``smtplib.SMTP.sendmail`` raises otherwise (and leaves the session ready for the next message)."""
    replies = []  # (code, text) per command, in order
    round_trips = 0
    for start in range(0, len(commands), WINDOW):
        if replies and replies[0][0] != 250:
            break  # MAIL FROM refused: the rest would only be refused too
        burst = commands[max(start, written) : start + WINDOW]
        if burst:
            smtp.send("".join(burst))
            round_trips += 1
        for index in range(start, min(start + WINDOW, len(commands))):
            code, text = smtp.getreply()
            replies.append((code, text))
            if code == 421:  # the server closes the connection: no further reply will come
                smtp.close()
                _raise_for_421(index, len(commands), replies, to_addrs, from_addr)
    mail_code, mail_text = replies[0]
    recipients = tuple(
        RecipientReply(address, code, _decode(text))
        for address, (code, text) in zip(to_addrs, replies[1:], strict=False)
    )
    data_reply = replies[len(commands) - 1] if len(replies) == len(commands) else None
    if mail_code != 250:
        round_trips += _end_unwanted_data(smtp, data_reply)
        _reset(smtp)
        raise smtplib.SMTPSenderRefused(mail_code, mail_text, from_addr)
    if not any(reply.accepted for reply in recipients):
        round_trips += _end_unwanted_data(smtp, data_reply)
        _reset(smtp)
        raise smtplib.SMTPRecipientsRefused(_refused(recipients))
    data_code, data_text = data_reply
    if data_code != 354:
        _reset(smtp)
        raise smtplib.SMTPDataError(data_code, data_text)
    return recipients, round_trips


def finish_transaction(smtp, recipients, round_trips, reset=True):
    """Read the reply to a message's content (already written). ``reset=False``: the next message's
    commands are already on their way, so a refusal is not followed by RSET (the transaction is over)."""
    code, text = smtp.getreply()
    if code != 250:
        if reset or code == 421:
            _close_or_reset(smtp, code)
        raise smtplib.SMTPDataError(code, text)
    return Delivery(recipients, code, _decode(text), pipelined=True, round_trips=round_trips)


def transaction_commands(smtp, from_addr, to_addrs, msg, mail_options=(), rcpt_options=()):
    """``(MAIL FROM options, command lines)`` of one pipelined transaction (as :func:`sendmail` builds them)."""
    options = []
    if smtp.does_esmtp:
        if smtp.has_extn("size"):
            options.append("size=%d" % len(msg))
        options.extend(mail_options)
    commands = [_command("MAIL", f"FROM:{smtplib.quoteaddr(from_addr)}", options)]
    commands += [_command("RCPT", f"TO:{smtplib.quoteaddr(address)}", rcpt_options) for address in to_addrs]
    return options, [*commands, _command("DATA")]


# -- helpers ---------------------------------------------------------------------------------------
def _command(verb, argument="", options=()):
    line = " ".join(part for part in (verb, argument, *options) if part)
    if "\r" in line or "\n" in line:
        shown = line.replace("\n", "\\n").replace("\r", "\\r")
        raise ValueError(f"command and arguments contain prohibited newline characters: {shown}")
    return line + CRLF


def message_data(msg):
    """The message as it goes after 354: leading dots doubled, CRLF-terminated, then the final dot."""
    data = _LEADING_DOT.sub(b"..", msg)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def _raise_for_421(index, count, replies, to_addrs, from_addr):
    code, text = replies[index]
    if index == 0:
        raise smtplib.SMTPSenderRefused(code, text, from_addr)
    if index == count - 1:
        raise smtplib.SMTPDataError(code, text)
    recipients = [
        RecipientReply(address, reply_code, _decode(reply_text))
        for address, (reply_code, reply_text) in zip(to_addrs, replies[1 : index + 1], strict=False)
    ]
    raise smtplib.SMTPRecipientsRefused(_refused(recipients))


def _end_unwanted_data(smtp, data_reply):
    """RFC 2920: a DATA accepted although the transaction failed gets an empty message ("."). Round trips used."""
    if not data_reply or data_reply[0] != 354:
        return 0
    smtp.send("." + CRLF)
    smtp.getreply()
    return 1


def _refused(replies):
    return {
        reply.address: (reply.code, reply.text.encode("utf-8", "replace")) for reply in replies if not reply.accepted
    }


def _decode(text):
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


def _reset(smtp):
    """RSET, ignoring a connection already gone (as smtplib's own reset after a refusal)."""
    try:
        smtp.rset()
    except smtplib.SMTPServerDisconnected:  # pylint: disable=except-pass  # a gone connection needs no reset
        pass


def _close_or_reset(smtp, code):
    if code == 421:
        smtp.close()
    else:
        _reset(smtp)
