"""Headers written exactly as given, for the headers receivers read byte for byte.

Python's email package refolds long header values when it writes a message,
and a token too long for a line (a URL, a DKIM tag list) becomes RFC 2047
encoded words: ``List-Unsubscribe: =?utf-8?q?=3Chttps=3A//...?=``. Gmail then
hides its unsubscribe button, and a DKIM-Signature so encoded no longer parses.
A :class:`RawHeader` is written as given: on one line, or, past ``max_line``
characters, folded only at the spaces already in it (which changes nothing
once unfolded, RFC 5322 2.2.3). Never encoded words.

>>> import email.policy
>>> from email.message import EmailMessage
>>> message = EmailMessage(policy=email.policy.SMTP)
>>> url = "<https://odoo.example.com/smtp_routing/unsubscribe/" + "x" * 90 + ">"
>>> message["List-Unsubscribe"] = url
>>> keep_raw(message, ["List-Unsubscribe"])
>>> message.as_bytes().decode() == "List-Unsubscribe: " + url + "\\r\\n\\r\\n"
True
>>> signature = RawHeader("DKIM-Signature", "v=1; a=rsa-sha256; h=" + ":".join(["from"] * 20) + "; b=abc def", 40)
>>> print(signature.fold(policy=email.policy.default), end="")
DKIM-Signature: v=1; a=rsa-sha256;
 h=from:from:from:from:from:from:from:from:from:from:from:from:from:from:from:from:from:from:from:from;
 b=abc def
"""

MAX_LINE = 998  # RFC 5322 2.1.1: the hard limit of a line


class RawHeader(str):
    """A header value the email package stores and writes unchanged (ASCII, no line breaks)."""

    def __new__(cls, name, value, max_line=MAX_LINE):
        value = str(value)
        if "\r" in value or "\n" in value:
            raise ValueError(f"{name}: a header value cannot contain line breaks")
        if not value.isascii():
            raise ValueError(f"{name}: only ASCII values can be written as they are")
        header = super().__new__(cls, value)
        header.name = name
        header.max_line = max_line
        return header

    def __getnewargs__(self):  # copy and pickle
        return (self.name, str(self), self.max_line)

    def fold(self, *, policy):
        """``Name: value`` and the line break; long lines are broken only at existing spaces."""
        words = str(self).split(" ")
        lines, line = [], f"{self.name}: {words[0]}"
        for word in words[1:]:
            if len(line) + 1 + len(word) > self.max_line:
                lines.append(line)
                line = " " + word
            else:
                line += " " + word
        lines.append(line)
        return policy.linesep.join(lines) + policy.linesep


def keep_raw(message, names):
    """Rewrite these headers of ``message`` (if present, ASCII) as :class:`RawHeader` values, in place."""
    for name in names:
        values = message.get_all(name) or []
        if not values or any(isinstance(value, RawHeader) for value in values):
            continue
        texts = [" ".join(str(value).split()) for value in values]
        if not all(text.isascii() for text in texts):
            continue
        del message[name]
        for text in texts:
            message[name] = RawHeader(name, text)
