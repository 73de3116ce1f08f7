# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""The transport pieces under Odoo's SMTP sessions: per-server time-out and TLS, pinned addresses, redacted debug
output, XOAUTH2 reply checking and a quit that survives a closed session.

Nothing here changes smtplib or Odoo until :func:`install` is called (once, when the addon's Python package is
loaded by Odoo). Context travels as arguments to :func:`per_server_connection`, which scopes it to the block
(and the thread) that opens the connection.

Why a thread-local, when everything else of a send is passed as arguments: Odoo's own
``IrMailServer.connect()`` builds the smtplib objects itself (``SMTPConnection``, a module-level
``SMTP_TIMEOUT``, ``starttls()`` without a context) and takes no argument for a time-out, a TLS context or
the addresses to connect to. Re-implementing ``connect()`` would fork Odoo's sign-in code (passwords,
certificates, OAuth in google_gmail and microsoft_outlook); calling it unchanged means the values must reach
its smtplib calls another way. :func:`per_server_connection` sets them for the one ``super().connect()``
call of ``ir.mail_server.connect()`` (a ``with`` block, in the calling thread only, restored on exit), and
the stand-in below reads them there. Nothing else reads them, and nothing outlives the block.
"""

import contextlib
import re
import smtplib
import ssl
import threading


class _SmtplibPerServer:
    """Stands in for ``smtplib`` inside Odoo's ir_mail_server module.

    Odoo opens SMTP connections with a module constant (``SMTP_TIMEOUT = 60``)
    and, for STARTTLS and SSL/TLS, without checking the server's certificate.
    This lets ``connect()`` apply each server's own time-out and a verifying TLS
    context, per thread (several worker threads send at once). Everything else is
    the real smtplib, looked up at call time (so test patches of ``smtplib.SMTP``
    still apply).
    """

    def __getattr__(self, name):
        return getattr(smtplib, name)

    @staticmethod
    def _timeout(default):
        return getattr(_per_server, "seconds", None) or default

    @staticmethod
    def _with_verifying_starttls(connection):
        context = getattr(_per_server, "tls_context", None)
        if context is None or not hasattr(connection, "starttls"):
            return connection
        starttls = connection.starttls

        def verifying_starttls(keyfile=None, certfile=None, context=None):
            return starttls(context=context or _per_server_context())

        connection.starttls = verifying_starttls
        return connection

    def SMTP(self, host="", port=0, *args, timeout=smtplib.socket._GLOBAL_DEFAULT_TIMEOUT, **kwargs):  # noqa: N802
        smtp_class = _pinned_class(smtplib.SMTP)
        return self._with_verifying_starttls(smtp_class(host, port, *args, timeout=self._timeout(timeout), **kwargs))

    def SMTP_SSL(self, host="", port=0, *args, timeout=smtplib.socket._GLOBAL_DEFAULT_TIMEOUT, **kwargs):  # noqa: N802
        if kwargs.get("context") is None and getattr(_per_server, "tls_context", None) is not None:
            kwargs["context"] = _per_server.tls_context
        return _pinned_class(smtplib.SMTP_SSL)(host, port, *args, timeout=self._timeout(timeout), **kwargs)


def _pinned_class(smtp_class):
    """``smtp_class``, or, while a connection is pinned, a subclass that connects only to the checked addresses.

    A user's own server is reached at the addresses that were checked (public ones),
    not at whatever its name resolves to a moment later; TLS still checks the
    certificate against the name (smtplib keeps the name given to its constructor).
    """
    if not getattr(_per_server, "pinned", None):
        return smtp_class

    class PinnedSMTP(smtp_class):
        def _get_socket(self, host, port, timeout):
            name, addresses = _per_server.pinned
            if host != name:
                raise OSError(f"smtp_routing: {host} is not the checked host {name}")
            error = OSError(f"smtp_routing: no address to connect to for {name}")
            for address in addresses:
                try:
                    return super()._get_socket(address, port, timeout)
                except OSError as failure:
                    error = failure
            raise error

    return PinnedSMTP


_per_server = threading.local()


def _per_server_context():
    return getattr(_per_server, "tls_context", None)


@contextlib.contextmanager
def per_server_connection(seconds, tls_context, pinned=None):
    """Within this block, Odoo's SMTP connections use this time-out and TLS context (None: Odoo's).

    ``pinned``, ``(host, addresses)``: connections to ``host`` go to these addresses only.
    """
    previous = tuple(getattr(_per_server, name, None) for name in ("seconds", "tls_context", "pinned"))
    _per_server.seconds, _per_server.tls_context, _per_server.pinned = seconds or None, tls_context, pinned
    try:
        yield
    finally:
        _per_server.seconds, _per_server.tls_context, _per_server.pinned = previous


def verifying_context(ca_file=None):
    """A client context that checks the certificate and the host name; ``ca_file`` adds trusted CAs."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(ca_file)
    return context


_REPLY_CODE = re.compile(r"retcode \((\d+)\)")
# Odoo's own _print_debug (it logs every SMTP line at DEBUG when a server debugs), taken by install() once Odoo's
# ir_mail_server module has put it in place: before that, smtplib's prints to stderr.
_print_debug_unredacted = [smtplib.SMTP._print_debug]


def _print_debug_redacted(self, *args):
    """Never log credentials, even with a server's Debugging flag on.

    AUTH PLAIN carries the password (base64) on the AUTH line; AUTH LOGIN sends it
    on a line of its own after a 334 reply: everything we send from AUTH until the
    final reply is replaced.
    """
    if args and args[0] == "send:":
        line = str(args[1]) if len(args) > 1 else ""
        if line.strip("'\"").upper().startswith("AUTH"):
            mechanism = line.strip("'\"").split()[1] if len(line.split()) > 1 else ""
            self._smtp_routing_in_auth = True
            args = ("send:", f"'AUTH {mechanism} [credentials redacted by smtp_routing]'")
        elif getattr(self, "_smtp_routing_in_auth", False):
            args = ("send:", "'[credentials redacted by smtp_routing]'")
    elif args and isinstance(args[0], str) and args[0].startswith("reply: retcode"):
        match = _REPLY_CODE.search(args[0])
        if match and match.group(1) != "334":
            self._smtp_routing_in_auth = False
    return _print_debug_unredacted[0](self, *args)


@contextlib.contextmanager
def checked_xoauth2(connection):
    """Check the reply to Odoo's ``AUTH XOAUTH2`` (Odoo sends it with ``docmd`` and ignores the answer).

    A refused token gets Gmail's ``334`` error challenge (answered with an empty line) or a ``535``; either
    way the login failed, and it must say so: otherwise the mail is refused at MAIL FROM (``530``) and
    taken for a refused sender instead of a sign-in problem.
    """
    smtp = connection.__obj__
    original = smtp.docmd

    def docmd(cmd, args=""):
        code, reply = original(cmd, args)
        if cmd.upper() != "AUTH" or not str(args).upper().startswith("XOAUTH2"):
            return code, reply
        if code == 334:
            code, reply = original("")
        if code != 235:
            raise smtplib.SMTPAuthenticationError(code, reply)
        return code, reply

    smtp.docmd = docmd
    try:
        yield
    finally:
        del smtp.docmd


def make_quit_safe(connection):
    """Let ``quit()`` close quietly a session the server already closed.

    A ``421`` reply (or a drop) closes the connection; stock ``mail.mail.send()``
    then calls ``quit()`` in a ``finally`` and the resulting
    ``SMTPServerDisconnected`` aborts the whole batch, hiding the real error.
    """
    smtp = connection.__obj__
    original_quit = smtp.quit

    def quit():  # noqa: A001 - replaces smtplib.SMTP.quit on this instance
        try:
            return original_quit()
        except smtplib.SMTPServerDisconnected:
            smtp.close()
            return None

    smtp.quit = quit


_installed = []


def install():
    """Put the transport pieces in place (idempotent): Odoo's ir_mail_server module gets the per-server smtplib
    stand-in, and smtplib's debug output is redacted for every connection of the process."""
    if _installed:
        return
    from odoo.addons.base.models import ir_mail_server as base_ir_mail_server

    base_ir_mail_server.smtplib = _SmtplibPerServer()
    if smtplib.SMTP._print_debug is not _print_debug_redacted:
        _print_debug_unredacted[0] = smtplib.SMTP._print_debug
    smtplib.SMTP._print_debug = _print_debug_redacted
    _installed.append(True)
