"""Headers written as given (never encoded words), and one-click unsubscribe tokens."""

import copy
import email.policy
import io
import pickle
from email.generator import BytesGenerator
from email.message import EmailMessage

import dkim as dkimpy
import pytest

from smtp_routing.tools import dkim
from smtp_routing.tools.headers import RawHeader, keep_raw
from smtp_routing.tools.unsubscribe import list_unsubscribe_headers, make_token, read_token

LONG_URL = "https://odoo.practice.example/mailing/42/unsubscribe_oneclick?document_id=7&email=bob%40example.com" + (
    "&hash_token=" + "0123456789abcdef" * 8
)


def _wire(message):
    buffer = io.BytesIO()
    BytesGenerator(buffer).flatten(message, linesep="\r\n")  # what smtplib.send_message writes
    return buffer.getvalue()


def _bulk_message():
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = "Practice Office <office@practice.example>"
    message["To"] = "bob@example.com"
    message["Subject"] = "Spring offer"
    for name, value in list_unsubscribe_headers(LONG_URL).items():
        message[name] = value
    message.set_content("Our spring offer.")
    return message


def test_the_email_package_alone_turns_a_long_url_into_encoded_words():
    """Why RawHeader exists: the stock output is what Gmail will not show a button for."""
    assert b"List-Unsubscribe: =?utf-8?q?" in _wire(_bulk_message())


def test_keep_raw_writes_the_url_on_one_line():
    message = _bulk_message()
    keep_raw(message, ["List-Unsubscribe", "List-Unsubscribe-Post"])
    wire = _wire(message)
    assert f"\r\nList-Unsubscribe: <{LONG_URL}>\r\n".encode() in wire
    assert b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in wire
    assert b"=?" not in wire.split(b"\r\n\r\n")[0]
    assert message["List-Unsubscribe"] == f"<{LONG_URL}>"


def test_signed_unsubscribe_headers_verify_with_dkimpy():
    message = _bulk_message()
    keep_raw(message, ["List-Unsubscribe", "List-Unsubscribe-Post"])
    pem, record = dkim.generate_key("rsa")
    value = dkim.sign(_wire(message), "practice.example", "s1", pem)
    message["DKIM-Signature"] = RawHeader("DKIM-Signature", dkim.foldable(value), max_line=78)
    wire = _wire(message)
    head = wire.split(b"\r\n\r\n")[0]
    assert b"=?" not in head  # the h= list, longer than a line, is not turned into encoded words
    assert all(len(line) <= 78 for line in head.split(b"\r\n") if line.startswith(b" ") and "h=" not in str(line))

    def dnsfunc(name, timeout=5):
        return record.encode()

    assert dkimpy.verify(wire, dnsfunc=dnsfunc)
    signed = value.split("h=", 1)[1].split(";", 1)[0].split(":")
    assert {"list-unsubscribe", "list-unsubscribe-post"} <= set(signed)
    assert not dkimpy.verify(wire.replace(b"document_id=7", b"document_id=8"), dnsfunc=dnsfunc)


def test_raw_headers_copy_pickle_and_refuse_what_cannot_be_written_as_is():
    header = RawHeader("List-Unsubscribe", "<https://x.example/u>")
    for clone in (copy.copy(header), copy.deepcopy(header), pickle.loads(pickle.dumps(header))):
        assert (clone, clone.name, type(clone)) == (header, "List-Unsubscribe", RawHeader)
    with pytest.raises(ValueError, match="line breaks"):
        RawHeader("List-Unsubscribe", "<https://x.example/u>\r\nBcc: victim@example.com")
    with pytest.raises(ValueError, match="ASCII"):
        RawHeader("List-Unsubscribe", "<https://exämple.com/u>")
    message = EmailMessage()
    message["List-Unsubscribe"] = "<https://ex\u00e4mple.com/u>"
    keep_raw(message, ["List-Unsubscribe"])  # left to the email package
    assert not isinstance(message["List-Unsubscribe"], RawHeader)


def test_a_line_past_the_hard_limit_is_folded_at_its_spaces():
    urls = ", ".join(f"<https://x.example/{'u' * 400}/{n}>" for n in range(3))
    folded = RawHeader("List-Unsubscribe", urls).fold(policy=email.policy.SMTP)
    lines = folded.split("\r\n")
    assert all(len(line) <= 998 for line in lines) and len([line for line in lines if line]) == 2
    assert folded.replace("\r\n", "") == f"List-Unsubscribe: {urls}"


@pytest.mark.parametrize("address", ["bob@example.com", "o'hara+news@sub.example.co.uk", "jos\u00e9@example.com"])
def test_tokens_name_their_address_and_nothing_else(address):
    secret = b"s3cret"
    token = make_token(address, secret)
    assert read_token(token, secret) == address.lower()
    assert "/" not in token and "+" not in token and "=" not in token  # safe in a URL path
    payload, signature = token.split(".")
    other = make_token("eve@example.com", secret).split(".")[0]
    assert read_token(f"{other}.{signature}", secret) is None
    assert read_token(f"{payload}.{signature[:-1]}", secret) is None
    assert read_token(token, b"other") is None
