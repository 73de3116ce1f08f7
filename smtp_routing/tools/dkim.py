"""DKIM keys and signatures (RFC 6376; Ed25519 per RFC 8463), with ``cryptography`` only.

``generate_key("rsa" | "ed25519")`` gives a private key (PEM) and the TXT record
to publish; ``sign(message_bytes, domain, selector, private_pem)`` returns the
``DKIM-Signature`` header value, relaxed/relaxed canonicalization, SHA-256.
"""

import base64
import hashlib
import re
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

DEFAULT_HEADERS = (
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "in-reply-to",
    "references",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "list-unsubscribe",
    "list-unsubscribe-post",
)


def generate_key(algorithm="rsa"):
    """(private key PEM text, DNS TXT record value) for a new key: RSA 2048 or Ed25519."""
    if algorithm == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
        public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        record = "v=DKIM1; k=ed25519; p=" + base64.b64encode(public).decode()
    elif algorithm == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        record = "v=DKIM1; k=rsa; p=" + base64.b64encode(public).decode()
    else:
        raise ValueError(f"unknown DKIM algorithm {algorithm!r}: use 'rsa' or 'ed25519'")
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return pem, record


def _split(message):
    """(list of (name, raw header bytes including continuation lines), body bytes) of an RFC 5322 message."""
    message = message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    head, separator, body = message.partition(b"\r\n\r\n")
    if not separator:
        head, body = message, b""
    headers = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and headers:
            name, raw = headers[-1]
            headers[-1] = (name, raw + b"\r\n" + line)
        elif line:
            headers.append((line.split(b":", 1)[0].strip().lower().decode("ascii", "replace"), line))
    return headers, body


def relaxed_header(raw):
    """RFC 6376 3.4.2."""
    name, _, value = raw.partition(b":")
    value = re.sub(rb"\r\n(?=[ \t])", b"", value)
    value = re.sub(rb"[ \t]+", b" ", value).strip(b" \t")
    return name.strip().lower() + b":" + value


def relaxed_body(body):
    """RFC 6376 3.4.4."""
    lines = body.replace(b"\r\n", b"\n").split(b"\n")
    lines = [re.sub(rb"[ \t]+", b" ", line).rstrip(b" \t") for line in lines]
    while lines and not lines[-1]:
        lines.pop()
    return b"\r\n".join(lines) + b"\r\n" if lines else b""


def _pick(headers, names):
    """The header instances to sign, bottom-up per name as RFC 6376 5.4.2 says; names absent are skipped."""
    used = {}
    picked, signed_names = [], []
    for name in names:
        instances = [raw for header_name, raw in headers if header_name == name]
        index = used.get(name, 0)
        if index < len(instances):
            picked.append(instances[-1 - index])
            signed_names.append(name)
            used[name] = index + 1
    return picked, signed_names


def _load(private_pem):
    key = serialization.load_pem_private_key(
        private_pem.encode() if isinstance(private_pem, str) else private_pem, password=None
    )
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key, "ed25519-sha256"
    if isinstance(key, rsa.RSAPrivateKey):
        return key, "rsa-sha256"
    raise ValueError("DKIM keys must be RSA or Ed25519")


def sign(message, domain, selector, private_pem, headers=DEFAULT_HEADERS, timestamp=None):
    """The value of a DKIM-Signature header for ``message`` (bytes, as it will be sent)."""
    key, algorithm = _load(private_pem)
    header_list, body = _split(message)
    body_hash = base64.b64encode(hashlib.sha256(relaxed_body(body)).digest()).decode()
    picked, names = _pick(header_list, [name.lower() for name in headers])
    if "from" not in names:
        raise ValueError("a message without From cannot be DKIM-signed")
    tags = [
        ("v", "1"),
        ("a", algorithm),
        ("c", "relaxed/relaxed"),
        ("d", domain),
        ("s", selector),
        ("t", str(int(timestamp if timestamp is not None else time.time()))),
        ("h", ":".join(names)),
        ("bh", body_hash),
        ("b", ""),
    ]
    unsigned = "; ".join(f"{tag}={value}" for tag, value in tags)
    data = b"".join(relaxed_header(raw) + b"\r\n" for raw in picked)
    data += relaxed_header(b"DKIM-Signature: " + unsigned.encode())
    if algorithm == "ed25519-sha256":
        signature = key.sign(hashlib.sha256(data).digest())
    else:
        signature = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return unsigned + base64.b64encode(signature).decode()


def foldable(value, width=64):
    """The signature value with spaces inside b= (verifiers ignore them, RFC 6376 3.2): points to fold the header at.

    >>> foldable("v=1; a=rsa-sha256; b=" + "A" * 10, width=4)
    'v=1; a=rsa-sha256; b=AAAA AAAA AA'
    """
    head, _, signature = value.rpartition("b=")
    return head + "b=" + " ".join(signature[i : i + width] for i in range(0, len(signature), width))


# RFC 8301: signers use RSA keys of 1024 bits at least; receivers ignore signatures made with shorter ones.
MIN_RSA_BITS = 1024


def rsa_bits(private_pem):
    """The size in bits of an RSA private key (PEM); None for an Ed25519 key."""
    key, algorithm = _load(private_pem)
    return key.key_size if algorithm == "rsa-sha256" else None


def public_record(private_pem):
    """The TXT record value for an existing private key."""
    key, algorithm = _load(private_pem)
    if algorithm == "ed25519-sha256":
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return "v=DKIM1; k=ed25519; p=" + base64.b64encode(raw).decode()
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()
