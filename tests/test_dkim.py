"""DKIM signatures made here verify with an independent verifier (dkimpy), and break when the mail changes."""

from email.message import EmailMessage

import dkim as dkimpy
import pytest

from smtp_routing.tools import dkim


def _message(body="Hello,\n\nyour appointment is confirmed.  \n\n\n"):
    msg = EmailMessage()
    msg["From"] = "Practice Office <office@practice.example>"
    msg["To"] = "client@example.com"
    msg["Subject"] = "Appointment  confirmed"
    msg["Date"] = "Sat, 21 Nov 2026 10:00:00 +0000"
    msg["Message-Id"] = "<abc@practice.example>"
    msg.set_content(body)
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def _signed(algorithm, message=None):
    pem, record = dkim.generate_key(algorithm)
    message = message or _message()
    value = dkim.sign(message, "practice.example", "s2026", pem)
    return b"DKIM-Signature: " + value.encode() + b"\r\n" + message, record


def _verify(signed, record):
    def dnsfunc(name, timeout=5):
        assert name == b"s2026._domainkey.practice.example."
        return record.encode()

    return dkimpy.verify(signed, dnsfunc=dnsfunc)


@pytest.mark.parametrize("algorithm", ["rsa", "ed25519"])
def test_signature_verifies_with_dkimpy(algorithm):
    signed, record = _signed(algorithm)
    assert _verify(signed, record)


@pytest.mark.parametrize("algorithm", ["rsa", "ed25519"])
def test_tampering_breaks_the_signature(algorithm):
    signed, record = _signed(algorithm)
    assert not _verify(signed.replace(b"confirmed.", b"cancelled."), record)
    assert not _verify(signed.replace(b"Subject: Appointment", b"Subject: Payment"), record)


def test_relaxed_canonicalization_tolerates_whitespace_and_folding():
    signed, record = _signed("rsa")
    reformatted = signed.replace(b"Subject: Appointment  confirmed", b"Subject:  Appointment\r\n  confirmed")
    assert _verify(reformatted, record)


def test_tags_and_signed_headers():
    pem, _record = dkim.generate_key("rsa")
    value = dkim.sign(_message(), "practice.example", "s1", pem, timestamp=1700000000)
    tags = dict(part.strip().split("=", 1) for part in value.split(";"))
    assert (tags["a"], tags["c"], tags["d"], tags["s"], tags["t"]) == (
        "rsa-sha256",
        "relaxed/relaxed",
        "practice.example",
        "s1",
        "1700000000",
    )
    assert tags["h"].split(":")[:5] == ["from", "to", "subject", "date", "message-id"]


def test_public_record_matches_generated_record():
    pem, record = dkim.generate_key("ed25519")
    assert dkim.public_record(pem) == record


def test_errors():
    with pytest.raises(ValueError, match="unknown DKIM algorithm"):
        dkim.generate_key("dsa")
    pem, _ = dkim.generate_key("rsa")
    with pytest.raises(ValueError, match="without From"):
        dkim.sign(b"Subject: x\r\n\r\nbody\r\n", "d.example", "s", pem)


@pytest.mark.parametrize(
    ("body", "expected"),
    [(b"", b""), (b"a  b \r\n\r\n\r\n", b"a b\r\n"), (b"x", b"x\r\n"), (b" \r\n", b"")],
)
def test_relaxed_body(body, expected):
    assert dkim.relaxed_body(body) == expected
