"""Bounce reports as receivers send them, built here with the email package, read by tools.bounces."""

import email
import email.policy
from email.message import EmailMessage, MIMEPart

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtp_routing.tools.bounces import CLASSES, classify, parse

ORIGINAL_ID = "<1712345678.123456789.42-mail.mail-7@practice.example>"


def _original(to="ghost@example.com"):
    original = EmailMessage()
    original["From"] = "Practice Office <office@practice.example>"
    original["To"] = to
    original["Subject"] = "Your appointment"
    original["Message-Id"] = ORIGINAL_ID
    original.set_content("See you on Monday.")
    return original


def _dsn_part(*recipient_blocks, reporting_mta="mx.example.com"):
    """A message/delivery-status part: the per-message block, then one block per recipient (RFC 3464)."""
    blocks = [f"Reporting-MTA: dns; {reporting_mta}\nArrival-Date: Mon, 6 May 2026 10:00:00 +0000"]
    for fields in recipient_blocks:
        blocks.append("\n".join(f"{name}: {value}" for name, value in fields.items()))
    text = "\n\n".join(blocks) + "\n"
    return email.message_from_string("Content-Type: message/delivery-status\n\n" + text, policy=email.policy.SMTP)


def _report(human_text, dsn=None, original=None, headers_only=False, sender="MAILER-DAEMON@mx.example.com"):
    """A multipart/report; report-type=delivery-status bounce, as bytes on the wire."""
    report = EmailMessage()
    report["From"] = f"Mail Delivery System <{sender}>"
    report["To"] = "bounce@practice.example"
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report["Message-Id"] = "<bounce-1@mx.example.com>"
    report.set_content(human_text)
    report.make_mixed()
    report.replace_header("Content-Type", 'multipart/report; report-type="delivery-status"')
    if dsn is not None:
        report.attach(dsn)
    if original is not None:
        if headers_only:
            part = MIMEPart()
            part.set_content(
                "".join(f"{name}: {value}\n" for name, value in original.items()),
                subtype="rfc822-headers",
            )
            report.attach(part)
        else:
            part = MIMEPart()
            part.set_content(original)
            report.attach(part)
    return report.as_bytes(policy=email.policy.SMTP)


def test_rfc3464_postfix_hard_bounce_with_the_returned_message():
    bounce = _report(
        "This is the mail system at host mx.example.com.\n\nI'm sorry to have to inform you that your message "
        "could not\nbe delivered to one or more recipients.\n\n<ghost@example.com>: host mx.example.com[192.0.2.5] "
        "said: 550 5.1.1\n    <ghost@example.com>: Recipient address rejected: User unknown (in reply to RCPT TO "
        "command)\n",
        _dsn_part(
            {
                "Final-Recipient": "rfc822; ghost@example.com",
                "Original-Recipient": "rfc822;ghost@example.com",
                "Action": "failed",
                "Status": "5.1.1",
                "Remote-MTA": "dns; mx.example.com",
                "Diagnostic-Code": "smtp; 550 5.1.1 <ghost@example.com>: Recipient address rejected: User unknown",
            }
        ),
        _original(),
    )
    report = parse(bounce)
    assert report.form == "dsn"
    assert report.original_message_id == ORIGINAL_ID
    assert report.original_subject == "Your appointment"
    assert report.reporting_mta == "mx.example.com"
    (recipient,) = report.recipients
    assert recipient.recipient == "ghost@example.com"
    assert (recipient.status, recipient.smtp_code, recipient.action) == ("5.1.1", 550, "failed")
    assert recipient.diagnostic == "550 5.1.1 <ghost@example.com>: Recipient address rejected: User unknown"
    assert recipient.remote_mta == "mx.example.com"
    assert recipient.bounce_class == "hard"


def test_gmail_multiline_diagnostic_and_returned_headers():
    diagnostic = (
        "smtp; 550-5.1.1 The email account that you tried to reach does not exist. Please try\n"
        " 550-5.1.1 double-checking the recipient's email address for typos or\n"
        " 550 5.1.1 unnecessary spaces. https://support.google.com/mail/?p=NoSuchUser a1-20020a gsmtp"
    )
    bounce = _report(
        "** Address not found **\n\nYour message wasn't delivered to nobody@gmail.com because the address "
        "couldn't be found, or is unable to receive mail.\n\nThe response from the remote server was:\n"
        "550 5.1.1 The email account that you tried to reach does not exist.\n",
        _dsn_part(
            {
                "Final-Recipient": "rfc822; nobody@gmail.com",
                "Action": "failed",
                "Status": "5.1.1",
                "Remote-MTA": "dns; gmail-smtp-in.l.google.com. (2a00:1450:400c:c0b::1b, the server for the "
                "domain gmail.com.)",
                "Diagnostic-Code": diagnostic,
            },
            reporting_mta="googlemail.com",
        ),
        _original("nobody@gmail.com"),
        headers_only=True,
        sender="mailer-daemon@googlemail.com",
    )
    report = parse(bounce)
    assert report.original_message_id == ORIGINAL_ID
    (recipient,) = report.recipients
    assert recipient.recipient == "nobody@gmail.com"
    assert recipient.bounce_class == "hard"
    assert recipient.diagnostic == (
        "550 5.1.1 The email account that you tried to reach does not exist. Please try double-checking the "
        "recipient's email address for typos or unnecessary spaces. https://support.google.com/mail/?p=NoSuchUser "
        "a1-20020a gsmtp"
    )


def test_exchange_online_ndr_with_report():
    bounce = _report(
        "Delivery has failed to these recipients or groups:\n\nLeft Company (left@contoso.example)\n"
        "The email address you entered couldn't be found.\n\nDiagnostic information for administrators:\n\n"
        "Generating server: AM0PR01MB1234.eurprd01.prod.exchangelabs.com\n\nleft@contoso.example\n"
        "Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address "
        "lookup'\n",
        _dsn_part(
            {
                "Final-Recipient": "rfc822;left@contoso.example",
                "Action": "failed",
                "Status": "5.1.10",
                "Diagnostic-Code": "smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP "
                "address lookup",
            },
            reporting_mta="AM0PR01MB1234.eurprd01.prod.exchangelabs.com",
        ),
        _original("left@contoso.example"),
        sender="postmaster@contoso.example",
    )
    (recipient,) = parse(bounce).recipients
    assert (recipient.recipient, recipient.status, recipient.bounce_class) == ("left@contoso.example", "5.1.10", "hard")
    assert recipient.diagnostic.startswith("550 5.1.10 RESOLVER.ADR.RecipientNotFound")


def test_exchange_text_only_ndr_finds_the_mail_by_in_reply_to():
    bounce = EmailMessage()
    bounce["From"] = "Microsoft Outlook <postmaster@contoso.example>"
    bounce["To"] = "bounce@practice.example"
    bounce["Subject"] = "Undeliverable: Your appointment"
    bounce["In-Reply-To"] = ORIGINAL_ID
    bounce["X-MS-Exchange-Message-Is-Ndr"] = ""
    bounce.set_content(
        "Your message to full@contoso.example couldn't be delivered.\n\nfull@contoso.example\n"
        "Remote Server returned '554 5.2.2 mailbox full; STOREDRV.Deliver.Exception:QuotaExceededException'\n"
    )
    report = parse(bounce)
    assert report.form == "exchange"
    assert report.original_message_id == ORIGINAL_ID
    (recipient,) = report.recipients
    assert (recipient.recipient, recipient.status, recipient.smtp_code) == ("full@contoso.example", "5.2.2", 554)
    assert recipient.bounce_class == "soft"


def test_postfix_text_only_over_quota_is_soft():
    bounce = EmailMessage()
    bounce["From"] = "MAILER-DAEMON@mx.example.com (Mail Delivery System)"
    bounce["To"] = "bounce@practice.example"
    bounce.set_content(
        "This is the mail system at host mx.example.com.\n\n<busy@example.com>: host mx.example.com[192.0.2.5] "
        "said: 552 5.2.2\n    <busy@example.com>: Mailbox quota exceeded (in reply to RCPT TO command)\n"
    )
    report = parse(bounce)
    assert report.form == "postfix"
    (recipient,) = report.recipients
    assert recipient.recipient == "busy@example.com"
    assert recipient.diagnostic == "552 5.2.2 <busy@example.com>: Mailbox quota exceeded"
    assert recipient.bounce_class == "soft"


def test_exim_failed_recipients_and_the_quoted_message():
    bounce = EmailMessage()
    bounce["From"] = "Mail Delivery System <Mailer-Daemon@mx.example.net>"
    bounce["To"] = "bounce@practice.example"
    bounce["X-Failed-Recipients"] = "blocked@example.net"
    bounce.set_content(
        "This message was created automatically by mail delivery software.\n\nA message that you sent could not "
        "be delivered to one or more of its recipients. This is a permanent error. The following address(es) "
        "failed:\n\n  blocked@example.net\n    host mx.example.net [192.0.2.9]\n    SMTP error from remote mail "
        "server after end of data:\n    550 5.7.1 Message rejected as spam by content filter\n\n"
        "------ This is a copy of the message, including all the headers. ------\n\n"
        f"From: office@practice.example\nMessage-ID: {ORIGINAL_ID}\nSubject: Offer\n\nBuy now\n"
    )
    report = parse(bounce)
    assert report.form == "exim"
    assert report.original_message_id == ORIGINAL_ID
    (recipient,) = report.recipients
    assert recipient.recipient == "blocked@example.net"
    assert recipient.diagnostic == "550 5.7.1 Message rejected as spam by content filter"
    assert recipient.bounce_class == "policy"


def test_qmail():
    bounce = EmailMessage()
    bounce["From"] = "MAILER-DAEMON@qmail.example"
    bounce["To"] = "bounce@practice.example"
    bounce.set_content(
        "Hi. This is the qmail-send program at qmail.example.\nI'm afraid I wasn't able to deliver your message "
        "to the following addresses.\nThis is a permanent error; I've given up. Sorry it didn't work out.\n\n"
        "<gone@qmail.example>:\nSorry, no mailbox here by that name. (#5.1.1)\n"
    )
    (recipient,) = parse(bounce).recipients
    assert (recipient.recipient, recipient.status, recipient.bounce_class) == ("gone@qmail.example", "5.1.1", "hard")
    assert "no mailbox here" in recipient.diagnostic


@pytest.mark.parametrize(
    ("status", "diagnostic", "bounce_class"),
    [
        (
            "5.7.26",
            "550-5.7.26 This mail has been blocked because the sender is unauthenticated. Gmail requires "
            "all senders to authenticate with either SPF or DKIM.",
            "policy",
        ),
        (
            "5.7.515",
            "550 5.7.515 Access denied, sending domain practice.example doesn't meet the required "
            "authentication level.",
            "policy",
        ),
        (
            "5.7.509",
            "550 5.7.509 Access denied, sending domain practice.example does not pass DMARC verification "
            "and has a DMARC policy of reject.",
            "policy",
        ),
        ("4.2.2", "452 4.2.2 The email account that you tried to reach is over quota.", "soft"),
        ("5.4.310", "550 5.4.310 DNS domain nowhere.example does not exist", "hard"),
        ("5.1.2", "Host or domain name not found. Name service error for name=nowhere.example", "hard"),
        ("5.3.4", "552 5.3.4 Message size exceeds fixed limit", "other"),
        ("5.0.0", "550 Mailbox full", "soft"),
    ],
)
def test_classes_of_well_known_replies(status, diagnostic, bounce_class):
    bounce = _report(
        "Delivery failed.",
        _dsn_part(
            {
                "Final-Recipient": "rfc822; x@example.org",
                "Action": "failed",
                "Status": status,
                "Diagnostic-Code": "smtp; " + diagnostic,
            }
        ),
    )
    (recipient,) = parse(bounce).recipients
    assert recipient.bounce_class == bounce_class
    assert recipient.bounce_class == classify(recipient.status, recipient.diagnostic, recipient.action)


def test_several_recipients_delays_and_successes_in_one_report():
    bounce = _report(
        "Some recipients failed.",
        _dsn_part(
            {
                "Final-Recipient": "rfc822; a@example.org",
                "Action": "failed",
                "Status": "5.1.1",
                "Diagnostic-Code": "smtp; 550 5.1.1 unknown user",
            },
            {
                "Final-Recipient": "rfc822; b@example.org",
                "Action": "delayed",
                "Status": "4.4.1",
                "Will-Retry-Until": "Fri, 10 May 2026 10:00:00 +0000",
            },
            {"Final-Recipient": "rfc822; c@example.org", "Action": "delivered", "Status": "2.0.0"},
        ),
    )
    recipients = parse(bounce).recipients
    assert [(r.recipient, r.action, r.bounce_class) for r in recipients] == [
        ("a@example.org", "failed", "hard"),
        ("b@example.org", "delayed", "soft"),
    ]


def test_a_success_notification_is_no_bounce():
    bounce = _report(
        "Your message was delivered.",
        _dsn_part({"Final-Recipient": "rfc822; c@example.org", "Action": "delivered", "Status": "2.0.0"}),
    )
    report = parse(bounce)
    assert (report.recipients, report.delivered) == ((), ("c@example.org",))


def test_internationalized_report_rfc6533():
    bounce = (
        "From: MAILER-DAEMON@mx.example.com\r\nTo: bounce@practice.example\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type="global-delivery-status"; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
        "--b\r\nContent-Type: message/global-delivery-status\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        "Reporting-MTA: dns; mx.example.com\r\n\r\nFinal-Recipient: utf-8; jos\u00e9@example.com\r\n"
        "Action: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 no such user\r\n\r\n--b--\r\n"
    ).encode()
    (recipient,) = parse(bounce).recipients
    assert (recipient.recipient, recipient.bounce_class) == ("jos\u00e9@example.com", "hard")


def test_legacy_odoo_bounce_address_names_the_mail():
    bounce = EmailMessage()
    bounce["From"] = "MAILER-DAEMON@mx.example.com"
    bounce["To"] = "bounce+1234-res.partner-7@practice.example"
    bounce.set_content("<x@example.org>: host mx said: 550 5.1.1 User unknown (in reply to RCPT TO command)")
    assert parse(bounce).legacy_mail_id == 1234
    bounce.replace_header("To", "bounce@practice.example")
    assert parse(bounce).legacy_mail_id is None


def test_report_that_lost_its_final_recipient_takes_it_from_the_text():
    bounce = _report(
        "<ghost@example.com>: host mx.example.com[192.0.2.5] said: 550 No such person at this address. (in reply "
        "to RCPT TO command)\n",
        _dsn_part(
            {
                "XX": "rfc822; ghost@example.com",
                "Action": "failed",
                "Status": "5.0.0",
                "Diagnostic-Code": "smtp; 550 No such person at this address.",
            }
        ),
    )
    (recipient,) = parse(bounce).recipients
    assert (recipient.recipient, recipient.bounce_class) == ("ghost@example.com", "hard")


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff\xfe garbage",
        b"Content-Type: multipart/report; boundary=zz\r\n\r\n--zz\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Final-Recipient: rfc822;\r\nStatus: 9.9.9.9\r\nAction: \r\n",  # truncated, no closing boundary
        b"Content-Type: message/delivery-status\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!",
        b"Content-Type: text/plain; charset=x-unknown-charset\r\n\r\n<a@b.example>: said: 550 5.1.1 nope",
        b"Content-Type: multipart/report\r\n\r\nno boundary at all",
        b"From: MAILER-DAEMON@x\r\nIn-Reply-To: <a@b> <c@d>\r\n\r\nsaid: said: said:",
    ],
)
def test_garbled_bounces_never_raise(raw):
    report = parse(raw)
    assert all(recipient.bounce_class in CLASSES for recipient in report.recipients)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_give_a_report(raw):
    report = parse(b"Content-Type: multipart/report; boundary=b\r\n\r\n--b\r\n" + raw)
    assert all(recipient.bounce_class in CLASSES for recipient in report.recipients)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200), st.text(max_size=300))
def test_any_status_and_diagnostic_give_a_class(status, diagnostic):
    fields = f"Final-Recipient: rfc822; a@example.org\nAction: failed\nStatus: {status}\nDiagnostic-Code: {diagnostic}"
    bounce = (
        b"Content-Type: multipart/report; boundary=b\r\n\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        + fields.encode("utf-8", "surrogatepass")
        + b"\r\n--b--\r\n"
    )
    assert all(recipient.bounce_class in CLASSES for recipient in parse(bounce).recipients)
