# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Routing by purpose, language, template and user, with Send-As: each path proven by the server that receives."""

import importlib.util
from pathlib import Path

from odoo import Command
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import Form, new_test_user, tagged

from .common import LiveSmtpCase


@tagged("post_install", "-at_install", "smtp_routing", "smtp_live")
class TestRouting(LiveSmtpCase):
    smtp_credentials = {}
    smtp_tls = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["res.lang"]._activate_lang("es_ES")
        cls.env.company.email = "info@practice.example"
        cls.sinks, cls.servers = {}, {}
        for key, from_filter in (("personal", "practice.example"), ("bulk", False), ("spanish", False)):
            cls.sinks[key] = cls.start_smtp_server()
            cls.servers[key] = cls.create_mail_server(cls.sinks[key], name=f"{key} server", from_filter=from_filter)
        cls.sinks["transactional"], cls.servers["transactional"] = cls.smtpd, cls.mail_server
        cls.mail_server.name = "transactional server"
        purpose = {code: cls.env.ref(f"smtp_routing.purpose_{code}") for code in ("personal", "bulk")}

        def route(name, servers, **values):
            lines = [Command.create({"server_id": cls.servers[key].id, "sequence": i}) for i, key in enumerate(servers)]
            return cls.env["smtp_routing.route"].create({"name": name, "line_ids": lines, **values})

        cls.route_bulk = route(
            "Mailshots", ["bulk"], sequence=1, purpose_ids=[Command.link(purpose["bulk"].id)], allow_in_composer=True
        )
        cls.route_spanish = route(
            "Spanish clients",
            ["spanish", "transactional"],
            sequence=5,
            lang_ids=[Command.link(cls.env.ref("base.lang_es").id)],
        )
        cls.route_personal = route(
            "Consultants",
            ["personal", "transactional"],
            sequence=10,
            purpose_ids=[Command.link(purpose["personal"].id)],
        )
        cls.route_default = route("Everything else", ["transactional"], is_default=True)
        cls.consultant = new_test_user(
            cls.env,
            login="ana",
            name="Ana Consultant",
            email="ana@practice.example",
            groups="base.group_user,base.group_partner_manager",
        )
        cls.client_en = cls.env["res.partner"].create(
            {"name": "Client EN", "email": "en@client.example", "lang": "en_US"}
        )
        cls.client_es = cls.env["res.partner"].create(
            {"name": "Cliente ES", "email": "es@client.example", "lang": "es_ES"}
        )
        cls.record = cls.env["res.partner"].create({"name": "Case file"})

    def setUp(self):
        super().setUp()
        for sink in self.sinks.values():
            sink.clear()
            sink.clear_faults()

    def _received_by(self):
        return {
            key: sorted(r for m in sink.messages for r in m.rcpt_tos)
            for key, sink in self.sinks.items()
            if sink.messages
        }

    def _comment_composer(self, user, **values):
        return (
            self.env["mail.compose.message"]
            .with_user(user)
            .with_context(
                default_model="res.partner", default_res_ids=self.record.ids, default_composition_mode="comment"
            )
            .create({"body": "<p>x</p>", "partner_ids": self.client_en.ids, **values})
        )

    def _post_as(self, user, partner, **kwargs):
        record = self.record.with_user(user)
        return record.message_post(
            body="Hello",
            partner_ids=partner.ids,
            message_type="comment",
            subtype_xmlid="mail.mt_comment",
            mail_auto_delete=False,
            **kwargs,
        )

    def test_consultant_writing_to_a_client_goes_through_the_personal_route(self):
        self._post_as(self.consultant, self.client_en)
        self.assertEqual(self._received_by(), {"personal": ["en@client.example"]})
        log = self.env["smtp_routing.delivery.log"].search([("outcome", "=", "sent")])
        self.assertEqual(log.server_id, self.servers["personal"])

    def test_spanish_recipient_goes_through_the_spanish_server(self):
        self._post_as(self.consultant, self.client_es)
        self.assertEqual(self._received_by(), {"spanish": ["es@client.example"]})

    def test_system_mail_goes_through_the_default_route(self):
        mail = self.env["mail.mail"].create(
            {
                "email_from": "notifications@practice.example",
                "email_to": "en@client.example",
                "subject": "Reminder",
                "body_html": "<p>x</p>",
            }
        )
        mail.send()
        self.assertEqual(self._received_by(), {"transactional": ["en@client.example"]})
        self.assertIn("Route Everything else, the default route", mail.smtp_routing_explanation)
        self.assertIn("Sent through transactional server", mail.smtp_routing_explanation)

    def test_template_route_wins_email_other(self):
        template = self.env["mail.template"].create(
            {
                "name": "Newsletter",
                "model_id": self.env.ref("base.model_res_partner").id,
                "subject": "News",
                "body_html": "<p>News</p>",
                "email_from": "info@practice.example",
                "email_to": "{{ object.email }}",
                "smtp_routing_route_id": self.route_bulk.id,
            }
        )
        mail_id = template.send_mail(self.client_en.id, force_send=True)
        self.assertEqual(self._received_by(), {"bulk": ["en@client.example"]})
        mail = self.env["mail.mail"].browse(mail_id)
        if mail.exists():
            self.assertIn("chosen by the template", mail.smtp_routing_explanation)

    def test_mass_mail_composer_is_bulk(self):
        composer = (
            self.env["mail.compose.message"]
            .with_context(
                default_model="res.partner",
                default_res_ids=(self.client_en | self.client_es).ids,
                default_composition_mode="mass_mail",
            )
            .create({"subject": "Mailshot", "body": "<p>Hi</p>", "email_from": "info@practice.example"})
        )
        composer._action_send_mail()
        self.env["mail.mail"].search([("state", "=", "outgoing")]).send()
        self.assertEqual(self._received_by(), {"bulk": ["en@client.example", "es@client.example"]})

    def test_composer_route_choice(self):
        composer = self._comment_composer(self.consultant, smtp_routing_route_id=self.route_bulk.id)
        composer._action_send_mail()
        self.assertEqual(self._received_by(), {"bulk": ["en@client.example"]})

    def test_composer_offers_the_route_choice_when_it_opens(self):
        """Issue 19: "Send Through" only appeared after a refused send had saved the composer."""
        self.consultant.groups_id = [Command.link(self.env.ref("base.group_partner_manager").id)]
        Composer = self.env["mail.compose.message"].with_user(self.consultant)
        view = self.env.ref("mail.email_compose_message_wizard_form")
        arch = Composer.get_views([(view.id, "form")])["views"]["form"]["arch"]
        self.assertIn('name="smtp_routing_route_id"', arch)
        # as the form asks it: every field of the view (its invisible control fields too)
        spec = dict.fromkeys(("composition_mode", "model", "res_ids", "composition_batch", "email_from"), {})
        spec.update(smtp_routing_route_choice={}, smtp_routing_route_id={"fields": {"display_name": {}}})
        for mode, res_ids, batch in (
            ("comment", self.record.ids, False),  # the chatter's full composer
            ("comment", (self.record | self.client_en).ids, True),  # "Send email" on several records of a list
            ("mass_mail", (self.record | self.client_en).ids, True),
        ):
            with self.subTest(mode=mode, batch=batch):
                context = {
                    "default_model": "res.partner",
                    "default_res_ids": res_ids,
                    "default_composition_mode": mode,
                }
                values = Composer.with_context(**context).onchange({}, [], spec)["value"]
                self.assertTrue(values.get("smtp_routing_route_choice"), values)
        self.route_bulk.allow_in_composer = False
        values = Composer.with_context(default_model="res.partner", default_res_ids=self.record.ids).onchange(
            {}, [], spec
        )["value"]
        self.assertFalse(values.get("smtp_routing_route_choice"))

    def test_one_record_from_a_list_composer_is_not_a_mailshot(self):
        """Issue 19: one mail to one contact from a list's "Send email" was classed as a bulk mailshot."""
        Composer = self.env["mail.compose.message"].with_context(
            default_model="res.partner", default_composition_mode="mass_mail"
        )
        one = Composer.with_context(default_res_ids=self.client_en.ids).create({"subject": "x", "body": "<p>x</p>"})
        self.assertNotEqual(one._prepare_mail_values_static().get("smtp_routing_purpose"), "bulk")
        several = Composer.with_context(default_res_ids=(self.client_en | self.client_es).ids).create(
            {"subject": "x", "body": "<p>x</p>"}
        )
        self.assertEqual(several._prepare_mail_values_static().get("smtp_routing_purpose"), "bulk")

    # -- per-user server ------------------------------------------------------------------------------
    def test_users_own_server_for_personal_mail_only(self):
        own_sink = self.start_smtp_server()
        own = self.create_mail_server(
            own_sink, name="Ana's mailbox", from_filter="ana@practice.example", smtp_routing_user_selectable=True
        )
        self.consultant.with_user(self.consultant).write({"smtp_routing_server_id": own.id})
        self._post_as(self.consultant, self.client_en)
        self.assertEqual([r for m in own_sink.messages for r in m.rcpt_tos], ["en@client.example"])
        self.assertEqual(self._received_by(), {})
        # another consultant's mail never goes through Ana's server
        other = new_test_user(
            self.env,
            context={"no_reset_password": True},
            login="ben",
            email="ben@practice.example",
            groups="base.group_user,base.group_partner_manager",
        )
        self._post_as(other, self.client_en)
        # through the route's personal server; Ana follows the record since her post, so she is notified too
        last = self.env["mail.mail"].search([("author_id", "=", other.partner_id.id)])
        self.assertEqual(
            self._received_by(),
            {"personal": ["ana@practice.example", "en@client.example"]},
            "\n".join(last.mapped("smtp_routing_explanation")),
        )
        self.assertEqual(len(own_sink.messages), 1)

    def test_users_pick_only_offered_servers_checked_on_the_server_side(self):
        Users = self.consultant.with_user(self.consultant)
        with self.assertRaisesRegex(ValidationError, "not available to users"):
            Users.write({"smtp_routing_server_id": self.servers["bulk"].id})
        other_mailbox = self.create_mail_server(
            self.smtpd, name="Ben's mailbox", from_filter="ben@practice.example", smtp_routing_user_selectable=True
        )
        with self.assertRaisesRegex(ValidationError, "may not send as ana@practice.example"):
            Users.write({"smtp_routing_server_id": other_mailbox.id})

    def test_users_see_offered_servers_never_credentials(self):
        offered = self.servers["personal"]
        offered.smtp_routing_user_selectable = True
        Server = self.env["ir.mail_server"].with_user(self.consultant)
        self.assertEqual(Server.search([]), offered)
        self.assertEqual(Server.browse(offered.id).name, "personal server")
        with self.assertRaises(AccessError):
            Server.browse(offered.id).read(["smtp_pass"])
        with self.assertRaises(AccessError):
            Server.browse(offered.id).write({"name": "mine"})

    # -- Send-As ------------------------------------------------------------------------------------------
    def test_composer_refuses_a_from_the_user_may_not_use(self):
        composer = self._comment_composer(self.consultant, email_from="support@practice.example")
        with self.assertRaisesRegex(UserError, "may not send as support@practice.example"):
            composer._action_send_mail()
        self.assertEqual(self._received_by(), {})
        self.env["smtp_routing.send_as"].create(
            {"address": "support@practice.example", "user_ids": [Command.link(self.consultant.id)]}
        )
        composer._action_send_mail()
        self.assertTrue(self._received_by())

    def test_queue_fails_a_mail_sent_as_someone_else(self):
        values = {
            "email_from": "boss@practice.example",
            "email_to": "en@client.example",
            "subject": "As the boss",
            "body_html": "<p>x</p>",
        }
        # created by code running for the consultant (as the composer does, in sudo): judged for the consultant
        mail = self.env["mail.mail"].with_user(self.consultant).sudo().create(values)
        mail.send()
        self.assertEqual(mail.state, "exception")
        self.assertIn("may not send as boss@practice.example", mail.failure_reason)
        log = self.env["smtp_routing.delivery.log"].search([("mail_id", "=", mail.id)])
        self.assertEqual((log.stage, log.category), ("policy", "send_as_denied"))
        self.assertEqual(self._received_by(), {}, "nothing is sent, nothing is rewritten")
        # created by code as the superuser (cron, automated action): Odoo's behaviour, whoever the author named
        mail = self.env["mail.mail"].create({**values, "author_id": self.consultant.partner_id.id})
        mail.send()
        self.assertEqual(mail.state, "sent")

    def test_company_address_and_domain_grants(self):
        allowed = self.env["mail.mail"]._smtp_routing_send_as_problem
        self.assertIsNone(allowed(self.consultant, "info@practice.example"), "the company's address")
        self.assertIsNone(allowed(self.consultant, "Ana <ana@practice.example>"), "the user's own address")
        self.assertTrue(allowed(self.consultant, "x@practice.example"))
        self.env["smtp_routing.send_as"].create(
            {"address": "practice.example", "user_ids": [Command.link(self.consultant.id)]}
        )
        self.assertIsNone(allowed(self.consultant, "x@practice.example"), "a domain grant")
        with self.assertRaisesRegex(ValidationError, "neither an email address nor a domain"):
            self.env["smtp_routing.send_as"].create({"address": "not a domain"})

    # -- explanation ----------------------------------------------------------------------------------------
    def test_which_server_explains_candidates_and_skips(self):
        self.env["smtp_routing.server.state"]._smtp_routing_failed(self.servers["personal"], "timeout")
        wizard = self.env["smtp_routing.route.explain"].create(
            {
                "email_from": "ana@practice.example",
                "author_id": self.consultant.id,
                "purpose": "personal",
                "partner_id": self.client_en.id,
            }
        )
        self.assertEqual(wizard.verdict, "Would go through transactional server.", "the verdict first")
        self.assertIn("Route Consultants, because the kind of mail is Personal", wizard.why)
        self.assertIn("Ana Consultant may send as ana@practice.example.", wizard.why)
        lines = [(line.name, line.usable, line.status, line.reason) for line in wizard.line_ids]
        self.assertEqual(lines[0][:3], ("personal server", False, "cooling"))
        self.assertIn("first server of the route - paused after a failure until", lines[0][3])
        self.assertEqual(
            lines[1], ("transactional server", True, "candidate", "stand-in number 1, if the ones above fail")
        )
        wizard.partner_id = self.client_es
        self.assertIn("Route Spanish clients, because the recipient reads Spanish", wizard.why)
        self.assertNotIn("es_ES", wizard.why)
        wizard.email_from = "boss@practice.example"
        self.assertTrue(wizard.verdict.startswith("Would be refused: "), wizard.verdict)
        self.assertFalse(wizard.line_ids.filtered("usable"), "a refused mail goes through no server")
        self.assertNotIn("does not cover the From", wizard.why)

    # -- Which Server? says what the queue does ---------------------------------------------------------------
    def _which_server(self, **values):
        """The server of the first usable line of *Which Server?* for the consultant's mail."""
        wizard = self.env["smtp_routing.route.explain"].create(
            {
                "email_from": "ana@practice.example",
                "author_id": self.consultant.id,
                "purpose": "personal",
                "partner_id": self.client_en.id,
                **values,
            }
        )
        return wizard.line_ids.filtered("usable")[:1].server_id

    def _carried_by(self, partner, servers, **kwargs):
        """The server whose loopback sink received the consultant's mail to ``partner``."""
        sinks = {**self.sinks, **{server: sink for server, sink in servers.items()}}
        for sink in sinks.values():
            sink.clear()
        self._post_as(self.consultant, partner, **kwargs)
        received = [key for key, sink in sinks.items() if sink.messages]
        self.assertEqual(len(received), 1, received)
        key = received[0]
        return self.servers[key] if key in self.servers else key

    def test_which_server_first_usable_line_is_the_server_that_carries_the_mail(self):
        """Issue 15: for each set of facts, the first usable line is where the queue then sends the mail."""
        own_sink = self.start_smtp_server()
        own = self.create_mail_server(
            own_sink, name="Ana's mailbox", from_filter="ana@practice.example", smtp_routing_user_selectable=True
        )
        extra = {own: own_sink}
        other_company = self.env["res.company"].create({"name": "Other practice"})
        cases = [
            ("route by purpose", lambda: None, {}, {}),
            ("route by language", lambda: None, {"partner_id": self.client_es.id}, {"partner": self.client_es}),
            (
                "cooling primary",
                lambda: self.env["smtp_routing.server.state"]._smtp_routing_failed(self.servers["personal"], "timeout"),
                {},
                {},
            ),
            (
                "the user's own server",
                lambda: self.consultant.with_user(self.consultant).write({"smtp_routing_server_id": own.id}),
                {},
                {},
            ),
            (
                "other company's primary",
                lambda: self.servers["personal"].write({"company_id": other_company.id}),
                {},
                {},
            ),
            (
                "Send-As limited to one server",
                lambda: self.env["smtp_routing.send_as"].create(
                    {
                        "address": "support@practice.example",
                        "user_ids": [Command.link(self.consultant.id)],
                        "server_id": self.servers["bulk"].id,
                    }
                ),
                {"email_from": "support@practice.example"},
                {"email_from": "Support <support@practice.example>", "author_id": self.consultant.partner_id.id},
            ),
            ("no route", lambda: self.env["smtp_routing.route"].search([]).unlink(), {}, {}),
            (
                "no route, other company's pick",
                lambda: (
                    self.env["smtp_routing.route"].search([]).unlink(),
                    self.servers["personal"].write({"company_id": other_company.id}),
                ),
                {},
                {},
            ),
        ]
        expected = {
            "route by purpose": self.servers["personal"],
            "route by language": self.servers["spanish"],
            "cooling primary": self.servers["transactional"],
            "the user's own server": own,
            "other company's primary": self.servers["transactional"],
            "Send-As limited to one server": self.servers["bulk"],
            "no route": own,  # Odoo's pick: its From filter names ana@practice.example exactly
        }
        self.env.flush_all()
        for name, arrange, wizard_values, post in cases:
            with self.subTest(name), self.env.cr.savepoint(flush=False) as savepoint:
                arrange()
                answer = self._which_server(**wizard_values)
                partner = post.pop("partner", self.client_en)
                carried = self._carried_by(partner, extra, **post)
                self.assertEqual(answer, carried, name)
                if name in expected:
                    self.assertEqual(carried, expected[name], name)
                self.env.flush_all()
                savepoint.rollback()
                self.env.invalidate_all()

    def test_which_server_form_shows_the_verdict_and_lines_before_saving(self):
        """As the web client opens it: a new record, answered by onchange, lines and all."""
        with Form(self.env["smtp_routing.route.explain"]) as wizard:
            wizard.email_from = "ana@practice.example"
            wizard.author_id = self.consultant
            wizard.purpose = "personal"
            self.assertEqual(wizard.verdict, "Would go through personal server.")
            self.assertEqual(len(wizard.line_ids), 2)
            line = wizard.line_ids._records[0]  # read-only lines: as the list shows them
            self.assertEqual((line["name"], line["usable"], line["status"]), ("personal server", True, "candidate"))

    def test_which_server_lines_and_stored_routing_in_the_readers_language(self):
        """Issue 19: the lines and a mail's stored routing render in the reader's language, not the sender's."""
        self.env["ir.module.module"]._load_module_terms(["smtp_routing"], ["es_ES"], overwrite=True)
        wizard = (
            self.env["smtp_routing.route.explain"]
            .with_context(lang="es_ES")
            .create({"email_from": "ana@practice.example", "author_id": self.consultant.id, "purpose": "personal"})
        )
        self.assertEqual(wizard.verdict, "Saldría por personal server.")
        self.assertEqual(wizard.line_ids[0].reason, "primer servidor de la ruta")
        self.assertEqual(wizard.line_ids[1].reason, "suplente número 1, si fallan los anteriores")
        self.assertEqual(self.consultant.lang, "en_US")
        self._post_as(self.consultant, self.client_en)
        mail = self.env["mail.mail"].search([("author_id", "=", self.consultant.partner_id.id)], limit=1)
        self.assertTrue(mail.smtp_routing_plan, "codes are stored, not text")
        english = mail.with_context(lang="en_US").smtp_routing_explanation
        self.assertIn("1. personal server: first server of the route", english)
        self.assertIn("Sent through personal server.", english)
        reader = new_test_user(self.env, login="lector", groups="base.group_system", lang="es_ES")
        spanish = mail.with_user(reader).with_context(lang=reader.lang).smtp_routing_explanation
        self.assertIn("1. personal server: primer servidor de la ruta", spanish)
        self.assertIn("Enviado a través de personal server.", spanish)
        # a mail routed before plans were stored as codes keeps its text
        mail.write({"smtp_routing_plan": False, "smtp_routing_explanation_text": "Old text"})
        self.assertEqual(mail.smtp_routing_explanation, "Old text")

    def test_upgrade_keeps_the_routing_text_of_older_mails(self):
        """The pre-migration moves the old text column to smtp_routing_explanation_text (real PostgreSQL DDL)."""
        path = Path(__file__).parents[1] / "migrations" / "18.0.0.1.1" / "pre-migrate.py"
        spec = importlib.util.spec_from_file_location("smtp_routing_pre_migrate", path)
        migration = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(migration)
        mail = self.env["mail.mail"].create({"email_to": "x@client.example", "subject": "old", "body_html": "<p/>"})
        mail.smtp_routing_explanation_text = "Routed by an older version"
        self.env.flush_all()
        cr = self.env.cr
        with cr.savepoint(flush=False):
            # the schema as an older version left it
            cr.execute("ALTER TABLE mail_mail RENAME COLUMN smtp_routing_explanation_text TO smtp_routing_explanation")
            migration.migrate(cr, "18.0.0.1.0")
            cr.execute("SELECT smtp_routing_explanation_text FROM mail_mail WHERE id = %s", [mail.id])
            self.assertEqual(cr.fetchone()[0], "Routed by an older version")
            migration.migrate(cr, "18.0.0.1.0")  # twice: nothing to do
        self.env.invalidate_all()
        self.assertEqual(mail.smtp_routing_explanation, "Routed by an older version")

    def test_failover_follows_the_route_order(self):
        self.sinks["personal"].add_fault("CONNECT", action="drop")
        self._post_as(self.consultant, self.client_en)
        self.assertEqual(self._received_by(), {"transactional": ["en@client.example"]})

    def test_send_as_limited_to_one_server(self):
        self.env["smtp_routing.send_as"].create(
            {
                "address": "support@practice.example",
                "user_ids": [Command.link(self.consultant.id)],
                "server_id": self.servers["spanish"].id,
            }
        )
        self._post_as(
            self.consultant,
            self.client_en,
            email_from="Support <support@practice.example>",
            author_id=self.consultant.partner_id.id,
        )
        self.assertEqual(self._received_by(), {"spanish": ["en@client.example"]})

    def test_personal_server_with_own_credentials(self):
        own_sink = self.start_smtp_server(credentials={"ana@practice.example": "ana-secret"})
        wizard_values = {
            "smtp_host": f"[127.0.0.1]:{own_sink.port}",
            "smtp_encryption": "none",
            "smtp_user": "ana@practice.example",
            "smtp_pass": "ana-secret",
        }
        Wizard = self.env["smtp_routing.personal.server"].with_user(self.consultant)
        with self.assertRaisesRegex(UserError, "does not allow personal outgoing servers"):
            Wizard.create(wizard_values).action_save()
        self.env["ir.config_parameter"].set_param("smtp_routing.allow_personal_servers", "1")
        self.env["ir.config_parameter"].set_param("smtp_routing.personal_servers_allow_private", "1")  # loopback
        Wizard.create(wizard_values).action_save()
        own = self.consultant.smtp_routing_server_id
        self.assertEqual(
            (own.smtp_routing_owner_id, own.from_filter, own.smtp_port),
            (self.consultant, "ana@practice.example", own_sink.port),
        )
        self.assertTrue(own.sudo().smtp_routing_pass_encrypted.startswith("srenc1:"))
        with self.assertRaises(AccessError):
            own.with_user(self.consultant).read(["smtp_pass"])
        # her personal mail goes through it, authenticated with her credentials
        self._post_as(self.consultant, self.client_en)
        self.assertEqual(
            [(m.auth_user, m.rcpt_tos) for m in own_sink.messages], [("ana@practice.example", ("en@client.example",))]
        )
        # never other mail, even from her address, and never another user's preference
        mail = self.env["mail.mail"].create(
            {
                "email_from": "ana@practice.example",
                "email_to": "x@client.example",
                "subject": "System",
                "body_html": "<p>x</p>",
            }
        )
        mail.send()
        self.assertEqual(len(own_sink.messages), 1)
        other = new_test_user(
            self.env,
            context={"no_reset_password": True},
            login="carl",
            email="carl@practice.example",
            groups="base.group_user",
        )
        with self.assertRaisesRegex(ValidationError, "another user's personal server"):
            other.with_user(other).write({"smtp_routing_server_id": own.id})
