# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Who may run what: methods that work as superuser check their caller first.

Not a model: a helper the models and wizards share.
"""

from odoo.exceptions import AccessError


def require_admin(env):
    """Settings administrators (and the system itself: crons, sudo) only.

    Actions and public methods are callable over JSON-RPC by any logged-in user
    (``/web/dataset/call_kw``); those that read or write as superuser (key rotation,
    DNS checks, connecting to a server, test emails) must not trust the caller.
    """
    if not env.is_system():
        raise AccessError(env._("Only Settings administrators may do this: ask one of them."))
