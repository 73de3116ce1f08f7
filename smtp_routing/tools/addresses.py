"""Address lists as they appear in To/Cc headers, for counting recipients.

>>> split_addresses('"Doe, Jane" <jane@example.com>, bob@example.com;carol@example.com')
['jane@example.com', 'bob@example.com', 'carol@example.com']
>>> split_addresses("not an address, @nope, x@")
[]
"""

import email.utils
import re

_ADDR_SPEC = re.compile(r"^[^@\s<>()\[\],;:\\\"]+@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


def split_addresses(text):
    """The valid addresses of a header value, lower-cased domain, in order, without duplicates."""
    if not text:
        return []
    if any(char in text for char in "\r\n"):
        text = " ".join(text.split())  # a folded or injected header value is read as one line, never as two
    found = []
    for _name, address in email.utils.getaddresses([text.replace(";", ",")]):
        address = address.strip()
        if not _ADDR_SPEC.match(address):
            continue
        local, _, domain = address.rpartition("@")
        normalized = f"{local}@{domain.lower()}"
        if normalized not in found:
            found.append(normalized)
    return found
