# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Send-As is bound to the user who acts, never to the author a caller names.

Every walk-around is tried as an ordinary internal user, through the arguments a
caller really controls (``message_post``, the composer, a template, their own
preferences, JSON-RPC), and judged on what the loopback SMTP servers received and
on what stays in the chatter.
"""

from odoo import Command
from odoo.exceptions import AccessError, UserError
from odoo.tests import new_test_user, tagged
from odoo.tests.common import JsonRpcException

from ..models import send_as_trust
from .common import LiveSmtpCase, LiveSmtpHttpCase


class SendAsCommon:
    smtp_credentials = {}
    smtp_tls = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env.company.email = "info@practice.example"
        cls.company_b = cls.env["res.company"].create({"name": "Company B", "email": "info@b.example"})

        def user(login, name, **values):
            return new_test_user(
                cls.env,
                login=login,
                name=name,
                email=f"{login}@practice.example",
                groups="base.group_user,base.group_partner_manager",
                **values,
            )

        cls.ana = user("ana", "Ana Consultant")
        cls.ben = user("ben", "Ben Colleague")
        cls.ceo = user("ceo", "Carla CEO")
        cls.client = cls.env["res.partner"].create(
            {"name": "Client", "email": "client@client.example", "user_id": cls.ceo.id}
        )
        cls.record = cls.env["res.partner"].create({"name": "Case file"})

    def setUp(self):
        super().setUp()
        # Trusted template renders are remembered per transaction; a test class shares one cursor.
        send_as_trust.forget(self.env)

    # -- helpers ------------------------------------------------------------------------------------
    def received(self):
        return [(m.mail_from, sorted(m.rcpt_tos)) for m in self.smtpd.messages]

    def post_as(self, user, **kwargs):
        return self.record.with_user(user).message_post(
            body="Hello",
            partner_ids=self.client.ids,
            message_type="comment",
            subtype_xmlid="mail.mt_comment",
            mail_auto_delete=False,
            **kwargs,
        )

    def assertRefusedInChatter(self, message, *fragments):
        """Nothing left; the message is in the chatter with a failed notification and the reason."""
        self.assertEqual(self.received(), [], "nothing may reach the SMTP server")
        self.assertIn(message, self.record.message_ids, "the message stays in the chatter")
        notification = message.notification_ids.filtered(lambda n: n.res_partner_id == self.client)
        self.assertEqual(notification.notification_status, "exception", "the failure is visible in the chatter")
        self.assertEqual(notification.failure_type, "mail_from_invalid")
        mail = self.env["mail.mail"].sudo().search([("mail_message_id", "=", message.id)])
        self.assertEqual(mail.state, "exception")
        self.assertTrue(mail.failure_reason.startswith("Send-As denied - "), mail.failure_reason)
        for fragment in fragments:
            self.assertIn(fragment, mail.failure_reason)
            self.assertIn(fragment, notification.failure_reason)
        log = self.env["smtp_routing.delivery.log"].search([("mail_id", "=", mail.id)])
        self.assertEqual((log.stage, log.category), ("policy", "send_as_denied"))
        return mail


@tagged("post_install", "-at_install", "smtp_routing", "smtp_live")
class TestSendAsWalkArounds(SendAsCommon, LiveSmtpCase):
    # -- message_post arguments ------------------------------------------------------------------------
    def test_message_post_email_from_of_someone_else(self):
        message = self.post_as(self.ana, email_from="ceo@practice.example")
        mail = self.assertRefusedInChatter(
            message,
            "Ana Consultant may not send as ceo@practice.example",
            "ask an administrator to give you a Send-As permission for ceo@practice.example",
        )
        # Issue 19: no menu path a user cannot follow (Settings > Technical needs developer mode and admin rights)
        self.assertNotIn("Settings", mail.failure_reason)

    def test_refusal_shows_an_administrator_a_path_without_developer_mode(self):
        admin = self.env.ref("base.user_admin")
        problem = self.env["mail.mail"]._smtp_routing_send_as_problem(admin, "ceo@practice.example")
        self.assertIn("Settings, section Outgoing Mail Routing, Send-As Permissions", problem)
        self.assertNotIn("Technical", problem)
        form = self.env["ir.mail_server"].get_views([(False, "form")])["views"]["form"]["arch"]
        self.assertNotIn("Technical", form, "the Deliverability tab links to the DKIM keys instead")
        self.assertIn('name="action_smtp_routing_dkim_keys"', form)
        action = self.env["ir.mail_server"].browse().action_smtp_routing_dkim_keys()
        self.assertEqual(action["res_model"], "smtp_routing.dkim.key")

    def test_message_post_two_address_from(self):
        message = self.post_as(self.ana, email_from="ceo@practice.example, ana@practice.example")
        self.assertRefusedInChatter(
            message, "Ana Consultant may send from one address only", "ceo@practice.example, ana@practice.example"
        )

    def test_message_post_unparsable_from(self):
        message = self.post_as(self.ana, email_from="the boss")
        self.assertRefusedInChatter(message, "the boss", "name@example.com")

    def test_message_post_author_false(self):
        message = self.post_as(self.ana, author_id=False, email_from="ceo@practice.example")
        self.assertFalse(message.author_id)
        self.assertRefusedInChatter(message, "Ana Consultant may not send as ceo@practice.example")

    def strict(self):
        self.env["ir.config_parameter"].set_param("smtp_routing.send_as_strict", "1")
        send_as_trust.forget(self.env)  # as a new transaction would: what templates chose is forgotten

    def test_message_post_author_a_colleague_in_strict_mode(self):
        self.strict()
        message = self.post_as(self.ana, author_id=self.ceo.partner_id.id)
        self.assertEqual(message.author_id, self.ceo.partner_id, "the author a caller names")
        self.assertRefusedInChatter(message, "Ana Consultant may not send as ceo@practice.example")

    def test_message_post_author_outside_strict_mode(self):
        # Odoo's "post on behalf of" an internal colleague passes (Odoo's own test_message_post_author) ...
        self.post_as(self.ana, author_id=self.ceo.partner_id.id)
        self.assertEqual([m for m, _rcpt in self.received()], ["ceo@practice.example"])
        self.smtpd.clear()
        # ... never on behalf of an outsider, a colleague of another company, or with the From typed
        outsider = self.env["res.partner"].create({"name": "Outsider", "email": "boss@client.example"})
        message = self.post_as(self.ana, author_id=outsider.id)
        self.assertRefusedInChatter(message, "Ana Consultant may not send as boss@client.example")
        other = new_test_user(
            self.env,
            login="b_user",
            email="b_user@b.example",
            groups="base.group_user",
            company_id=self.company_b.id,
            company_ids=[Command.set(self.company_b.ids)],
        )
        self.smtpd.clear()
        message = self.post_as(self.ana, author_id=other.partner_id.id)
        self.assertRefusedInChatter(message, "Ana Consultant may not send as b_user@b.example")
        message = self.post_as(self.ana, author_id=self.ceo.partner_id.id, email_from=self.ceo.email_formatted)
        self.assertRefusedInChatter(message, "Ana Consultant may not send as ceo@practice.example")

    def test_own_mail_still_goes_out(self):
        self.post_as(self.ana)
        self.assertEqual(self.received(), [("ana@practice.example", ["client@client.example"])])
        self.post_as(self.ana, email_from="info@practice.example")  # the company's address
        self.assertEqual(len(self.smtpd.messages), 2)

    def test_refused_mail_goes_once_a_permission_is_granted(self):
        message = self.post_as(self.ana, email_from="ceo@practice.example")
        mail = self.assertRefusedInChatter(message)
        self.env["smtp_routing.send_as"].create(
            {"address": "ceo@practice.example", "user_ids": [Command.link(self.ana.id)]}
        )
        mail.mark_outgoing()
        mail.send()
        self.assertEqual(self.received(), [("ceo@practice.example", ["client@client.example"])], "nothing was lost")

    # -- the composer --------------------------------------------------------------------------------------
    def composer(self, user, **values):
        return (
            self.env["mail.compose.message"]
            .with_user(user)
            .with_context(default_model="res.partner", default_res_ids=self.record.ids)
            .create({"body": "<p>x</p>", "partner_ids": self.client.ids, "composition_mode": "comment", **values})
        )

    def test_composer_typed_from_is_refused_before_anything_is_posted(self):
        composer = self.composer(self.ana, email_from="Carla <ceo@practice.example>")
        with self.assertRaisesRegex(UserError, "Ana Consultant may not send as ceo@practice.example"):
            composer._action_send_mail()
        self.assertEqual(self.received(), [])
        composer = self.composer(self.ana, email_from="ceo@practice.example, ana@practice.example")
        with self.assertRaisesRegex(UserError, "one address only"):
            composer._action_send_mail()
        self.assertEqual(self.received(), [])

    def test_composer_author_and_from_of_a_colleague_is_refused(self):
        composer = self.composer(self.ana, author_id=self.ceo.partner_id.id, email_from=self.ceo.email_formatted)
        with self.assertRaisesRegex(UserError, "Ana Consultant may not send as ceo@practice.example"):
            composer._action_send_mail()
        self.assertEqual(self.received(), [])

    # -- one's own address ---------------------------------------------------------------------------------
    def test_self_written_email_does_not_widen_send_as(self):
        self.ana.with_user(self.ana).write({"email": "ceo@practice.example"})
        self.assertEqual(self.ana.email, "ceo@practice.example", "a self-writable field")
        self.assertEqual(self.ana.sudo().smtp_routing_approved_email, "ana@practice.example")
        message = self.post_as(self.ana)
        self.assertRefusedInChatter(
            message, "ceo@practice.example is not the address an administrator approved for Ana Consultant"
        )
        # the same through the contact form
        self.ana.partner_id.with_user(self.ana).write({"email": "info@b.example"})
        self.assertEqual(self.ana.sudo().smtp_routing_approved_email, "ana@practice.example")

    def test_self_written_email_in_strict_mode(self):
        self.strict()
        self.ana.with_user(self.ana).write({"email": "ana.private@practice.example"})
        message = self.post_as(self.ana)
        self.assertRefusedInChatter(message, "ana.private@practice.example is not the address an administrator")

    def test_self_written_email_nobody_uses_outside_strict_mode(self):
        # Odoo's own tests change a user's address and send from it: outside strict mode an address
        # that belongs to nobody else passes (README, differences from stock Odoo).
        self.ana.with_user(self.ana).write({"email": "ana.private@practice.example"})
        self.post_as(self.ana)
        self.assertEqual([m for m, _rcpt in self.received()], ["ana.private@practice.example"])

    def test_self_written_email_granted_to_someone_else_is_claimed(self):
        """A Send-As grant claims its address as written (any case, spaces around), and nothing it only contains.

        The claim check reads only the grants whose address contains the domain (not every grant): this pins
        that the narrower read decides as the full one did.
        """
        self.env["smtp_routing.send_as"].create(
            {"address": " Support@Practice.Example ", "user_ids": [Command.link(self.ben.id)]}
        )
        self.ana.with_user(self.ana).write({"email": "support@practice.example"})
        message = self.post_as(self.ana)
        self.assertRefusedInChatter(message, "support@practice.example is not the address an administrator approved")
        self.ana.with_user(self.ana).write({"email": "port@practice.example"})  # inside "support@...", not it
        self.post_as(self.ana)
        self.assertEqual([m for m, _rcpt in self.received()], ["port@practice.example"])

    def test_an_administrator_approves_an_address(self):
        self.ana.write({"email": "ana.consultant@practice.example"})  # as an administrator
        self.assertEqual(self.ana.smtp_routing_approved_email, "ana.consultant@practice.example")
        self.ana.partner_id.write({"email": "ana@consulting.example"})
        self.assertEqual(self.ana.smtp_routing_approved_email, "ana@consulting.example")
        with self.assertRaises(AccessError):
            self.ana.with_user(self.ana).write({"smtp_routing_approved_email": "ceo@practice.example"})

    # -- forced server, route, company ------------------------------------------------------------------
    def test_forced_server_another_users_personal_server(self):
        ben_sink = self.start_smtp_server()
        ben_server = self.create_mail_server(
            ben_sink, name="Ben's mailbox", from_filter="ben@practice.example", smtp_routing_owner_id=self.ben.id
        )
        message = self.post_as(self.ana, mail_server_id=ben_server.id)
        self.assertEqual(ben_sink.messages, [])
        self.assertRefusedInChatter(
            message, "Ana Consultant may not send through Ben's mailbox", "another user's personal server"
        )

    def test_forced_server_not_offered_to_users(self):
        relay_sink = self.start_smtp_server()
        relay = self.create_mail_server(relay_sink, name="Board relay", sequence=50)
        message = self.post_as(self.ana, mail_server_id=relay.id)
        self.assertEqual(relay_sink.messages, [])
        self.assertRefusedInChatter(message, "may not send through Board relay", "not offered to users")

    def test_template_editors_choose_their_templates_server_outside_strict_mode(self):
        # Odoo lets template editors pick a template's server (Odoo's own test_message_notify_composer)
        relay_sink = self.start_smtp_server()
        relay = self.create_mail_server(relay_sink, name="Board relay", sequence=50)
        self.ana.groups_id += self.env.ref("mail.group_mail_template_editor")
        template = self.responsible_template(email_from="{{ user.email_formatted }}", mail_server_id=relay.id)
        template.with_user(self.ana).write({"mail_server_id": relay.id})  # now chosen by a template editor
        template.with_user(self.ben).send_mail(self.client.id, force_send=True)
        self.assertEqual([m.mail_from for m in relay_sink.messages], ["ben@practice.example"])
        relay_sink.clear()
        self.strict()
        template.with_user(self.ben).send_mail(self.client.id, force_send=True)
        self.assertEqual(relay_sink.messages, [])
        mail = self.env["mail.mail"].search([("model", "=", "res.partner"), ("state", "=", "exception")])
        self.assertIn("Ben Colleague may not send through Board relay", mail.failure_reason)

    def test_forced_server_of_another_company(self):
        sink_b = self.start_smtp_server()
        server_b = self.create_mail_server(
            sink_b, name="B relay", company_id=self.company_b.id, smtp_routing_user_selectable=True
        )
        message = self.post_as(self.ana, mail_server_id=server_b.id)
        self.assertEqual(sink_b.messages, [])
        self.assertRefusedInChatter(message, "may not send through B relay", "belongs to another company")

    def test_forced_route_not_selectable(self):
        vip_sink = self.start_smtp_server()
        vip = self.create_mail_server(vip_sink, name="VIP relay", sequence=50)
        route = self.env["smtp_routing.route"].create(
            {"name": "VIP", "line_ids": [Command.create({"server_id": vip.id})]}
        )
        message = self.post_as(self.ana, smtp_routing_route_id=route.id)
        self.assertEqual(vip_sink.messages, [])
        self.assertRefusedInChatter(message, "Ana Consultant may not choose the route VIP", "Selectable When Writing")

    def test_forced_company(self):
        sink_b = self.start_smtp_server()
        self.create_mail_server(sink_b, name="B relay", sequence=0, company_id=self.company_b.id)
        message = self.post_as(self.ana, record_company_id=self.company_b.id)
        self.assertEqual(sink_b.messages, [])
        self.assertRefusedInChatter(message, "Ana Consultant may not send mail for Company B")

    def test_offered_server_and_selectable_route_may_be_chosen(self):
        self.mail_server.smtp_routing_user_selectable = True
        self.post_as(self.ana, mail_server_id=self.mail_server.id)
        route = self.env["smtp_routing.route"].create(
            {
                "name": "Chosen",
                "allow_in_composer": True,
                "line_ids": [Command.create({"server_id": self.mail_server.id})],
            }
        )
        self.post_as(self.ana, smtp_routing_route_id=route.id)
        self.assertEqual(len(self.smtpd.messages), 2)

    # -- templates ---------------------------------------------------------------------------------------
    def responsible_template(self, **values):
        return self.env["mail.template"].create(
            {
                "name": "From the salesperson",
                "model_id": self.env.ref("base.model_res_partner").id,
                "subject": "Your file",
                "body_html": "<p>Hello</p>",
                "email_from": "{{ object.user_id.email_formatted }}",
                "partner_to": "{{ object.id }}",
                **values,
            }
        )

    def test_template_from_the_responsible_user_sent_by_a_colleague(self):
        template = self.responsible_template()
        composer = (
            self.env["mail.compose.message"]
            .with_user(self.ana)
            .with_context(default_model="res.partner", default_res_ids=self.client.ids)
            .create({"composition_mode": "comment", "template_id": template.id})
        )
        self.assertEqual(composer.email_from, '"Carla CEO" <ceo@practice.example>')
        composer._action_send_mail()
        self.assertIn(("ceo@practice.example", ["client@client.example"]), self.received())
        self.smtpd.clear()
        template.with_user(self.ana).send_mail(self.client.id, force_send=True)
        self.assertEqual(self.received(), [("ceo@practice.example", ["client@client.example"])], "send_mail too")

    def test_template_in_mass_mode_sent_by_a_colleague(self):
        template = self.responsible_template()
        other = self.env["res.partner"].create({"name": "Other", "email": "o@client.example", "user_id": self.ceo.id})
        composer = (
            self.env["mail.compose.message"]
            .with_user(self.ana)
            .with_context(default_model="res.partner", default_res_ids=(self.client | other).ids)
            .create({"composition_mode": "mass_mail", "template_id": template.id})
        )
        composer._action_send_mail()
        to_clients = sorted((m, r) for m, r in self.received() if r != ["ceo@practice.example"])
        self.assertEqual(
            to_clients,
            [("ceo@practice.example", ["client@client.example"]), ("ceo@practice.example", ["o@client.example"])],
        )

    def test_template_written_by_a_user_is_checked(self):
        self.ana.groups_id += self.env.ref("mail.group_mail_template_editor")
        template = (
            self.env["mail.template"]
            .with_user(self.ana)
            .create(
                {
                    "name": "Mine",
                    "model_id": self.env.ref("base.model_res_partner").id,
                    "subject": "Your file",
                    "body_html": "<p>Hello</p>",
                    "email_from": "{{ object.user_id.email_formatted }}",
                    "partner_to": "{{ object.id }}",
                }
            )
        )
        self.assertEqual(template.smtp_routing_sender_uid, self.ana)
        template.send_mail(self.client.id, force_send=True)
        self.assertEqual(self.received(), [])
        mail = self.env["mail.mail"].search([("model", "=", "res.partner"), ("res_id", "=", self.client.id)])
        self.assertEqual(mail.state, "exception")
        self.assertIn("Ana Consultant may not send as ceo@practice.example", mail.failure_reason)

    def test_template_email_values_from_is_checked(self):
        template = self.responsible_template()
        template.with_user(self.ana).send_mail(
            self.client.id, force_send=True, email_values={"email_from": "ben@practice.example"}
        )
        self.assertEqual(self.received(), [])

    def test_template_restricted_by_an_administrator(self):
        template = self.responsible_template(smtp_routing_check_send_as=True)
        template.with_user(self.ana).send_mail(self.client.id, force_send=True)
        self.assertEqual(self.received(), [])
        template.with_user(self.ceo).send_mail(self.client.id, force_send=True)
        self.assertEqual([m for m, _rcpt in self.received()], ["ceo@practice.example"], "its own user may")

    # -- code running as the superuser keeps Odoo's behaviour ---------------------------------------
    def test_superuser_code_keeps_odoo_behaviour(self):
        self.record.message_post(
            body="Automated",
            email_from="ceo@practice.example",
            partner_ids=self.client.ids,
            message_type="comment",
            subtype_xmlid="mail.mt_comment",
        )
        self.assertEqual([m for m, _rcpt in self.received()], ["ceo@practice.example"])

    # -- "Which Server?" uses the same rule ---------------------------------------------------------
    def test_which_server_uses_the_same_rule(self):
        wizard = self.env["smtp_routing.route.explain"].create(
            {"email_from": "ceo@practice.example, ana@practice.example", "author_id": self.ana.id}
        )
        self.assertTrue(wizard.verdict.startswith("Would be refused: Ana Consultant may send from one address only"))
        wizard.email_from = "ana@practice.example"
        self.assertIn("Ana Consultant may send as ana@practice.example.", wizard.why)


@tagged("post_install", "-at_install", "smtp_routing", "smtp_live")
class TestPersonalServers(SendAsCommon, LiveSmtpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.own_sink = cls.start_smtp_server(credentials={"ana": "ana-secret"})
        cls.env["ir.config_parameter"].set_param("smtp_routing.allow_personal_servers", "1")
        # the fixtures listen on loopback, which users' own servers may use only where an admin allows it
        cls.env["ir.config_parameter"].set_param("smtp_routing.personal_servers_allow_private", "1")

    def setUp(self):
        super().setUp()
        self.own_sink.clear()
        self.own_sink.clear_faults()

    def ana_server(self):
        self.ana.with_user(self.ana).write({"email": "info@practice.example"})  # her own, self-written
        self.env["smtp_routing.personal.server"].with_user(self.ana).create(
            {
                "smtp_host": f"[127.0.0.1]:{self.own_sink.port}",
                "smtp_encryption": "none",
                "smtp_user": "ana",
                "smtp_pass": "ana-secret",
            }
        ).action_save()
        return self.ana.smtp_routing_server_id

    def test_personal_server_filter_is_the_approved_address(self):
        server = self.ana_server()
        self.assertEqual(server.from_filter, "ana@practice.example")

    def test_forced_own_personal_server_only_for_the_approved_address(self):
        server = self.ana_server()
        message = self.post_as(self.ana, mail_server_id=server.id, email_from="info@practice.example")
        self.assertEqual(self.own_sink.messages, [])
        self.assertRefusedInChatter(message, "Ana Consultant's personal server, sends from ana@practice.example only")
        self.post_as(self.ana, mail_server_id=server.id, email_from="ana@practice.example")
        self.assertEqual({m.mail_from for m in self.own_sink.messages}, {"ana@practice.example"})

    def test_personal_server_never_a_failover_for_others(self):
        alias_domain = self.env["mail.alias.domain"].create({"name": "practice.example"})
        self.env.company.alias_domain_id = alias_domain  # system mail: notifications@practice.example
        server = self.ana_server()
        server.sudo().from_filter = "practice.example"  # even widened by an administrator
        self.smtpd.add_fault("CONNECT", action="drop")
        mail = self.create_mail(email_from="ben@practice.example")
        mail.send()
        self.assertEqual(self.own_sink.messages, [], "Ana's server never carries another user's mail")
        self.assertEqual(mail.state, "outgoing", "deferred: it waits for a server that may carry it")
        system = self.create_mail(email_from="info@practice.example")
        system.send()
        self.assertEqual(self.own_sink.messages, [])

    def test_personal_server_in_a_route_only_for_its_owner(self):
        server = self.ana_server()
        self.env["smtp_routing.route"].create(
            {
                "name": "Everything",
                "is_default": True,
                "line_ids": [
                    Command.create({"server_id": server.id, "sequence": 1}),
                    Command.create({"server_id": self.mail_server.id, "sequence": 2}),
                ],
            }
        )
        self.post_as(self.ben)
        self.assertEqual(self.own_sink.messages, [])
        self.assertEqual([m for m, _rcpt in self.received()], ["ben@practice.example"])
        message = self.post_as(self.ana, email_from="ana@practice.example")
        mails = self.env["mail.mail"].search([("mail_message_id", "=", message.id)])
        self.assertEqual(
            {m.mail_from for m in self.own_sink.messages},
            {"ana@practice.example"},
            "\n".join(mails.mapped(lambda m: f"{m.state} {m.failure_reason} {m.smtp_routing_explanation}")),
        )


@tagged("post_install", "-at_install", "smtp_routing", "smtp_live")
class TestSendAsRpc(SendAsCommon, LiveSmtpHttpCase):
    """The path an attacker really has: JSON-RPC as an ordinary internal user."""

    def test_call_kw_message_post_with_someone_elses_from(self):
        self.authenticate("ana", "ana")
        message_id = self.make_jsonrpc_request(
            "/web/dataset/call_kw/res.partner/message_post",
            {
                "model": "res.partner",
                "method": "message_post",
                "args": [[self.record.id]],
                "kwargs": {
                    "body": "Hello",
                    "email_from": "ceo@practice.example",
                    "author_id": self.ceo.partner_id.id,
                    "partner_ids": self.client.ids,
                    "message_type": "comment",
                    "subtype_xmlid": "mail.mt_comment",
                    "mail_auto_delete": False,
                },
            },
        )
        self.env.invalidate_all()
        message = self.env["mail.message"].browse(message_id)
        self.assertEqual(message.smtp_routing_acting_uid, self.ana)
        self.assertRefusedInChatter(message, "Ana Consultant may not send as ceo@practice.example")

    def test_call_kw_cannot_stamp_the_acting_user_or_trust(self):
        self.authenticate("ana", "ana")
        with self.assertRaisesRegex(JsonRpcException, "ValueError"), self.assertLogs("odoo.http", "WARNING"):
            self.make_jsonrpc_request(
                "/web/dataset/call_kw/res.partner/message_post",
                {
                    "model": "res.partner",
                    "method": "message_post",
                    "args": [[self.record.id]],
                    "kwargs": {
                        "body": "Hello",
                        "email_from": "ceo@practice.example",
                        "partner_ids": self.client.ids,
                        "smtp_routing_acting_uid": self.ceo.id,
                        "smtp_routing_from_trusted": True,
                    },
                },
            )
        self.assertEqual(self.received(), [])
        # Not even an administrator can: the stamps come from the server, never from the values.
        admin = new_test_user(
            self.env,
            login="settings_admin",
            groups="base.group_user,base.group_system",
            context={"no_reset_password": True},
        )
        self.authenticate("settings_admin", "settings_admin")
        mail_id = self.make_jsonrpc_request(
            "/web/dataset/call_kw/mail.mail/create",
            {
                "model": "mail.mail",
                "method": "create",
                "args": [
                    {
                        "email_from": "ceo@practice.example",
                        "email_to": "client@client.example",
                        "subject": "Forged",
                        "body_html": "<p>x</p>",
                        "smtp_routing_acting_uid": self.ceo.id,
                        "smtp_routing_from_trusted": True,
                        "smtp_routing_server_trusted": True,
                    }
                ],
                "kwargs": {},
            },
        )
        self.env.invalidate_all()
        mail = self.env["mail.mail"].browse(mail_id)
        self.assertEqual(
            (mail.smtp_routing_acting_uid, mail.smtp_routing_from_trusted, mail.smtp_routing_server_trusted),
            (admin, False, False),
        )
        mail.send()
        self.assertEqual(self.received(), [])
        self.assertIn("may not send as ceo@practice.example", mail.failure_reason)
