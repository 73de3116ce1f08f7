# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Odoo test base that talks to a real SMTP server on 127.0.0.1.

Odoo's test mode short-circuits SMTP (``odoo.modules.module.current_test``:
``connect()`` returns None and ``send_email()`` returns before sending). This
base lifts that flag for the class, empties the CLI fallback server so nothing
can leave for ``localhost:25``, and starts the loopback fixture from
``smtp_routing.testing.smtpd``. Commits stay disabled (the thread keeps its
``testing`` flag), so everything a test writes is rolled back.
"""

from unittest.mock import patch

from odoo import modules
from odoo.tests import HttpCase, TransactionCase
from odoo.tools import config

from ..testing.smtpd import SmtpServer
from ..testing.tlscert import make_self_signed


def database_occurrences(env, needle):
    """Every ``table.column`` of the database whose text holds ``needle`` (after flushing the ORM)."""
    env.flush_all()
    env.cr.execute("""
        SELECT c.table_schema, c.table_name, c.column_name
          FROM information_schema.columns c
          JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
         WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
           AND c.data_type IN ('character varying', 'text', 'jsonb', 'json', 'bytea')
    """)
    found = []
    for schema, table, column in env.cr.fetchall():
        env.cr.execute(
            f'SELECT 1 FROM "{schema}"."{table}" WHERE "{column}"::text LIKE %s LIMIT 1',  # noqa: S608
            [f"%{needle}%"],
        )
        if env.cr.fetchone():
            found.append(f"{table}.{column}")
    return found


class LiveSmtpMixin:
    """Real SMTP delivery to loopback servers, for a TransactionCase or an HttpCase."""

    smtp_credentials = {"odoo": "odoo-pass"}
    smtp_tls = "starttls"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.startClassPatcher(patch.object(modules.module, "current_test", False))
        cls.startClassPatcher(patch.dict(config.options, {"smtp_server": "", "smtp_port": 0}))
        # Certificates are verified (smtp_routing's default): the fixtures' test CA is trusted.
        cls.tls_cert = make_self_signed()
        cls.env["ir.config_parameter"].set_param("smtp_routing.tls_ca_file", cls.tls_cert.cert_path)
        cls.smtpd = cls.start_smtp_server(credentials=cls.smtp_credentials, tls=cls.smtp_tls)
        # No other server may catch the mail: a fresh database has none, but be explicit.
        cls.env["ir.mail_server"].search([]).write({"sequence": 1000})
        cls.mail_server = cls.create_mail_server(cls.smtpd, name="Loopback primary")

    @classmethod
    def start_smtp_server(cls, **kwargs):
        if kwargs.get("tls") and "cert" not in kwargs:
            kwargs["cert"] = cls.tls_cert
        server = SmtpServer(**kwargs).start()
        cls.addClassCleanup(server.stop)
        return server

    @classmethod
    def create_mail_server(cls, smtpd, name, **values):
        credentials = next(iter(smtpd.credentials.items()), (False, False))
        encryption = {None: "none", "starttls": "starttls", "implicit": "ssl"}[smtpd.tls]
        return cls.env["ir.mail_server"].create(
            {
                "name": name,
                "smtp_host": smtpd.host,
                "smtp_port": smtpd.port,
                "smtp_encryption": encryption,
                "smtp_user": credentials[0],
                "smtp_pass": credentials[1],
                "sequence": 1,
                **values,
            }
        )

    def setUp(self):
        super().setUp()
        self.smtpd.clear()
        self.smtpd.clear_faults()

    def create_mail(self, **values):
        return self.env["mail.mail"].create(
            {
                "email_from": "alice@example.com",
                "email_to": "bob@example.com",
                "subject": "Loopback delivery",
                "body_html": "<p>Hello Bob</p>",
                **values,
            }
        )


class LiveSmtpCase(LiveSmtpMixin, TransactionCase):
    """A TransactionCase with real SMTP delivery to loopback servers."""


class LiveSmtpHttpCase(LiveSmtpMixin, HttpCase):
    """An HttpCase (JSON-RPC as a real user) with real SMTP delivery to loopback servers."""
