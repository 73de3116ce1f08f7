"""pytest plugin, loaded after pytest-odoo: Odoo's test mode, as odoo-bin --test-enable sets it.

odoo-bin runs every test suite with ``odoo.modules.module.current_test`` set (odoo/tests/loader.py,
run_suite): ``ir.mail_server.connect()`` then returns None and ``send_email()`` returns before
sending, so no test can reach a real SMTP server by accident. pytest-odoo 2.3.0 sets that flag only
on Odoo 19 and later. Without this plugin, under Odoo 18, any mail a test causes goes out for real:
``new_test_user()`` makes auth_signup send its welcome mail, which connects to the test's
``smtp.example.com`` server. Classes that deliver on purpose (``LiveSmtpCase``, the browser tour)
lift the flag themselves, exactly as under odoo-bin.

    python -m pytest -p pytest_odoo -p scripts.pytest_odoo_test_mode --odoo-database=... smtp_routing/tests
"""

import pytest


@pytest.fixture(scope="session", autouse=True)
def odoo_current_test(load_registry):
    """Set once the registry is loaded (pytest-odoo's ``load_registry``), as run_suite does after loading."""
    from odoo.modules import module

    if module.current_test:  # already set by pytest-odoo (Odoo 19+): leave it alone
        yield
        return
    module.current_test = True
    try:
        yield
    finally:
        module.current_test = False
