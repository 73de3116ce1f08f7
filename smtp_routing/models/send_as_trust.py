# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""What an administrator's template chose in this transaction, for the user who runs it.

Also which From values Odoo took from an author a caller named (``message_post(author_id=...)``
without a From), so that the Send-As check can tell them from a From the caller typed.

When a trusted template (see ``mail.template._smtp_routing_trusted_sender``) renders its
From, or hands out its server or route, the values are remembered here, per cursor and
per acting user. A message or mail created afterwards in the same transaction whose From
(server, route) is one of those values is stamped as chosen by the template, so Odoo's
everyday "From: the responsible user" templates keep working when a colleague sends them.

Nothing a caller sends can add to it: it lives in server memory, keyed by the cursor and
dropped when the transaction commits or rolls back, never in the context, the values or
the database.

Not a model: per-transaction memory that the models (mail.message, mail.mail, mail.template) and the
composer share.
"""

import threading
import weakref
from contextlib import contextmanager

_REGISTRY = weakref.WeakKeyDictionary()  # cursor -> {uid: Trusted}; every worker thread has its own cursors
_LOCK = threading.Lock()  # the mapping itself is shared by the threads of a process


class Trusted:
    __slots__ = ("froms", "named_froms", "route_ids", "server_ids")

    def __init__(self):
        self.froms = set()  # From values an administrator's template rendered
        self.named_froms = set()  # From values Odoo took from the author a caller named (no From given)
        self.server_ids = set()
        self.route_ids = set()


def _for(env, create=True):
    with _LOCK:
        by_uid = _REGISTRY.get(env.cr)
        if by_uid is None:
            if not create:
                return None
            by_uid = _REGISTRY[env.cr] = {}
            # a transaction's memory ends with it
            cursor = weakref.ref(env.cr)
            env.cr.postcommit.add(lambda: _drop(cursor))
            env.cr.postrollback.add(lambda: _drop(cursor))
        if env.uid not in by_uid and create:
            by_uid[env.uid] = Trusted()
        return by_uid.get(env.uid)


def remember(env, froms=(), server_id=None, route_id=None):
    trusted = _for(env)
    trusted.froms.update(value.strip() for value in froms if value and isinstance(value, str))
    if server_id:
        trusted.server_ids.add(server_id)
    if route_id:
        trusted.route_ids.add(route_id)


@contextmanager
def named_author(env, email_from):
    """Within a message_post / message_notify that named an author and no From (Odoo then takes the
    author's address): messages created with that From are "posted on behalf of" the author."""
    value = email_from.strip() if email_from and isinstance(email_from, str) else None
    trusted = _for(env)
    added = value is not None and value not in trusted.named_froms
    if added:
        trusted.named_froms.add(value)
    try:
        yield
    finally:
        if added:
            trusted.named_froms.discard(value)


def is_named_author(env, email_from):
    trusted = _for(env, create=False)
    return bool(trusted and email_from and isinstance(email_from, str) and email_from.strip() in trusted.named_froms)


def covers(env, email_from=None, server_id=None, route_id=None):
    """(From trusted, server trusted, route trusted) for values about to be stored by ``env.uid``."""
    trusted = _for(env, create=False)
    if trusted is None:
        return False, False, False
    return (
        bool(email_from) and isinstance(email_from, str) and email_from.strip() in trusted.froms,
        bool(server_id) and server_id in trusted.server_ids,
        bool(route_id) and route_id in trusted.route_ids,
    )


def _drop(cursor_ref):
    cursor = cursor_ref()
    if cursor is not None:
        with _LOCK:
            _REGISTRY.pop(cursor, None)


def forget(env):
    """Drop what this cursor remembers (tests: one cursor serves a whole test class)."""
    with _LOCK:
        _REGISTRY.pop(env.cr, None)
