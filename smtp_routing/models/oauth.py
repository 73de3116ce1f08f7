# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Support for Odoo's OAuth servers (``google_gmail``, ``microsoft_outlook``) used by the bridge modules.

Odoo's modules call their provider's token endpoint with ``requests.post`` and,
on an error, raise a ``UserError`` that drops what the provider said (Google's
text is a fixed sentence; Microsoft's keeps only the description). The token
health of a server needs the provider's own error code (``invalid_grant``:
the user must sign in again), so the bridges put :class:`RequestsProxy` in
place of ``requests`` inside those modules, as ``sending.transport`` does for
``smtplib`` in Odoo's ``ir_mail_server``: it is the real ``requests`` except while :func:`watching` is active
in the calling thread, where it records the response and may send the request
to another endpoint (Google's URLs are constants in Odoo's code; Microsoft's
come from the ``microsoft_outlook.endpoint`` parameter already).

Not a model: helpers for ``smtp_routing.oauth.mixin`` and the bridge modules.
"""

import contextlib
import threading

import requests

from odoo.exceptions import UserError

_watch = threading.local()


class TokenCall:
    """One watched token request: the response it got (None if none came back)."""

    def __init__(self, rewrite=None):
        self.rewrite = rewrite or (lambda url: url)
        self.response = None

    def json_error(self):
        """``(HTTP status, error code, description)`` of the provider's error reply."""
        if self.response is None:
            return None, None, ""
        try:
            body = self.response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        return self.response.status_code, body.get("error"), str(body.get("error_description") or "")


class RequestsProxy:
    """Stands in for ``requests`` in an Odoo module; transparent unless a call is being watched."""

    def __getattr__(self, name):
        return getattr(requests, name)

    def post(self, url, *args, **kwargs):
        call = getattr(_watch, "call", None)
        # pylint: disable=external-request-timeout
        # A transparent stand-in: the caller's arguments pass through unchanged, its timeout included (Odoo's
        # google_gmail and microsoft_outlook mixins pass 5 and 10 seconds); adding one here would hide theirs.
        if call is None:
            return requests.post(url, *args, **kwargs)
        response = requests.post(call.rewrite(url), *args, **kwargs)
        call.response = response
        return response


def install(module):
    """Route ``module``'s ``requests.post`` through the proxy (idempotent)."""
    if not isinstance(getattr(module, "requests", None), RequestsProxy):
        module.requests = RequestsProxy()


@contextlib.contextmanager
def watching(rewrite=None):
    """Within this block, token requests of this thread are recorded (and their URL rewritten)."""
    previous = getattr(_watch, "call", None)
    _watch.call = TokenCall(rewrite)
    try:
        yield _watch.call
    finally:
        _watch.call = previous


def replace_prefix(url, prefix, replacement):
    """``url`` with ``prefix`` replaced (unchanged when it does not start with it)."""
    return replacement + url[len(prefix) :] if url and url.startswith(prefix) else url


class TokenError(UserError):
    """The provider refused to issue a token (or could not be reached).

    ``oauth_error`` (e.g. ``invalid_grant``), ``oauth_status`` (HTTP status, None
    when unreachable) and ``oauth_description`` are what ``tools.smtp_errors``
    classifies; the message says what to do, in the user's language.
    """

    def __init__(self, message, oauth_error, oauth_status=None, oauth_description=""):
        super().__init__(message)
        self.oauth_error = oauth_error or "unknown"
        self.oauth_status = oauth_status
        self.oauth_description = oauth_description
