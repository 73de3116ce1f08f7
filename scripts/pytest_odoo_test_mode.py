"""pytest plugin, loaded after pytest-odoo: Odoo's test mode and default selection, as odoo-bin sets them.

odoo-bin runs every test suite with ``odoo.modules.module.current_test`` set (odoo/tests/loader.py,
run_suite): ``ir.mail_server.connect()`` then returns None and ``send_email()`` returns before
sending, so no test can reach a real SMTP server by accident. pytest-odoo 2.3.0 sets that flag only
on Odoo 19 and later. Without this plugin, under Odoo 18, any mail a test causes goes out for real:
``new_test_user()`` makes auth_signup send its welcome mail, which connects to the test's
``smtp.example.com`` server. Classes that deliver on purpose (``LiveSmtpCase``, the browser tour)
lift the flag themselves, exactly as under odoo-bin.

It also leaves out what odoo-bin leaves out by default: test classes tagged ``-standard`` (they are meant
for a run that names their tag, e.g. the mass-mailing tests of the odoo-core pass, which installs
mass_mailing). pytest-odoo ignores Odoo's tags and would run them against a database without it.

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


def pytest_collection_modifyitems(config, items):
    """Deselect tests whose class is not in Odoo's ``standard`` selection (``@tagged("-standard", ...)``)."""
    kept, left_out = [], []
    for item in items:
        tags = getattr(getattr(item, "cls", None), "test_tags", None)
        (left_out if tags is not None and "standard" not in tags else kept).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept
