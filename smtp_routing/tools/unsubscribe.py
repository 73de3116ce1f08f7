"""One-click unsubscribe (RFC 8058) links: a token that names an address and cannot be forged.

The token is ``<address, base64url>.<HMAC-SHA256 of it, base64url>`` under a
secret the caller keeps (Odoo's database secret); a changed address or a
wrong secret is refused. The two headers a bulk mail carries:

>>> secret = b"database secret"
>>> token = make_token("Client@Example.com", secret)
>>> read_token(token, secret)
'client@example.com'
>>> read_token(token.replace("Y2x", "Y3x"), secret) is None, read_token(token, b"other secret") is None
(True, True)
>>> read_token("garbage", secret) is None
True
>>> list_unsubscribe_headers("https://odoo.example.com/smtp_routing/unsubscribe/abc")
{'List-Unsubscribe': '<https://odoo.example.com/smtp_routing/unsubscribe/abc>', \
'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click'}
"""

import base64
import binascii
import hashlib
import hmac

SCOPE = b"smtp_routing.unsubscribe:"
ONE_CLICK = "List-Unsubscribe=One-Click"


def _b64(data):
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(address, secret):
    return hmac.new(secret, SCOPE + address.encode(), hashlib.sha256).digest()


def make_token(address, secret):
    """The URL-safe token for ``address`` (lower-cased)."""
    address = address.strip().lower()
    return f"{_b64(address.encode())}.{_b64(_signature(address, secret))}"


def read_token(token, secret):
    """The address a token names, or None when it is malformed or its signature does not match."""
    payload, _, signature = str(token or "").partition(".")
    try:
        address = _unb64(payload).decode()
        given = _unb64(signature)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if "@" not in address or not hmac.compare_digest(given, _signature(address, secret)):
        return None
    return address


def list_unsubscribe_headers(url):
    """The List-Unsubscribe and List-Unsubscribe-Post headers of a one-click link."""
    return {"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": ONE_CLICK}
