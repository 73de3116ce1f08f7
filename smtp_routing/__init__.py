# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
# Odoo loads this package as ``odoo.addons.smtp_routing``; only then are the
# models imported. The framework-free parts (``tools``, ``testing``) stay
# importable without Odoo, e.g. ``python -m smtp_routing.tools.<module>``.
if __name__.startswith("odoo.addons."):
    from .sending import transport

    transport.install()
    from . import controllers
    from . import models
    from . import wizard
    from .hooks import post_init_hook, uninstall_hook
