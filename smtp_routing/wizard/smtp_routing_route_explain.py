# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import Command, api, fields, models
from odoo.tools import email_normalize

from ..models.smtp_routing_route import PURPOSE_SELECTION
from ..sending import explain
from ..tools import planning


class SmtpRoutingRouteExplain(models.TransientModel):
    """ "Which server?": the candidates a mail would get, in order, with the reasons."""

    _name = "smtp_routing.route.explain"
    _description = "Which Server?"

    email_from = fields.Char(string="From", default=lambda self: self.env.user.email_formatted)
    partner_id = fields.Many2one("res.partner", string="Recipient")
    lang = fields.Selection(
        selection="_lang_selection", string="Recipient Language", help="Empty: the recipient's language."
    )
    template_id = fields.Many2one("mail.template")
    author_id = fields.Many2one("res.users", default=lambda self: self.env.user, domain=[("share", "=", False)])
    purpose = fields.Selection(PURPOSE_SELECTION, default="personal", required=True)
    model_id = fields.Many2one("ir.model", string="Source Document")
    company_id = fields.Many2one("res.company", default=lambda self: self.env.company, required=True)
    verdict = fields.Char(compute="_compute_plan", help="What would happen to a mail with these facts.")
    why = fields.Text(compute="_compute_plan", help="Why: Send-As, and the route (or Odoo's own choice).")
    line_ids = fields.One2many(
        "smtp_routing.route.explain.line",
        "wizard_id",
        string="Servers",
        compute="_compute_plan",
        help="The servers in the order the queue would try them (the first usable one carries the mail), "
        "then those left out.",
    )

    @api.model
    def _lang_selection(self):
        return self.env["res.lang"].get_installed()

    @api.depends("email_from", "partner_id", "lang", "template_id", "author_id", "purpose", "model_id", "company_id")
    def _compute_plan(self):
        for wizard in self:
            wizard._explain()

    def _explain(self):
        """The verdict first ("Would go through X" / "Would be refused: ..."), then why, then the servers.

        The decision is tools.planning's, from the facts the queue would gather for such a mail."""
        Server = self.env["ir.mail_server"].sudo()
        servers = Server.search([], order="sequence, id")
        email_from = self.email_from or (self.template_id.email_from if self.template_id else "")
        why = []
        author = self.author_id
        refusal, allowed = None, None
        if author and email_from:
            verdict, refusal = self.env["mail.mail"]._smtp_routing_send_as_verdict(author, email_from)
            if not refusal:
                why.append(
                    self.env._(
                        "%(user)s may send as %(address)s.",
                        user=author.name,
                        address=email_normalize(email_from) or email_from,
                    )
                )
                if verdict.code == "granted_through":
                    allowed = frozenset(verdict.server_ids)
        cooling, _failing = self.env["smtp_routing.server.state"].sudo()._smtp_routing_health(servers)
        limited = {s.id: s.smtp_routing_next_slot for s in servers if s.smtp_routing_health == "limited"}
        template_route = self.template_id.smtp_routing_route_id
        facts = planning.MailFacts(
            purpose=self.purpose,
            email_from=email_normalize(email_from or "") or "",
            lang=self.lang or self.partner_id.lang or None,
            company_id=self.company_id.id,
            model=self.model_id.model or None,
            forced_route_id=template_route.id or None,
            forced_by="template" if template_route else "",
            author_server_id=self.env["mail.mail"]._smtp_routing_own_server_of(author, self.purpose, email_from).id
            or None,
            acting_user_id=author.id or None,
        )
        routes = [r._smtp_routing_spec() for r in self.env["smtp_routing.route"].sudo().search([])]
        odoo = None
        if planning.match_route(facts, routes)[0] is None:
            primary, smtp_from = Server.with_company(self.company_id)._find_mail_server(email_from or "")
            odoo = planning.OdooChoice(primary.id or None, smtp_from or "")
        to_string = fields.Datetime.to_string
        plan = planning.plan_mail(
            facts,
            routes,
            [s._smtp_routing_spec() for s in servers],
            Server._match_from_filter,
            odoo,
            send_as_server_ids=allowed,
            health=planning.Health(
                {sid: to_string(until) for sid, until in cooling.items()},
                {sid: to_string(until) for sid, until in limited.items() if until},
            ),
        )
        why.append(explain.route_text(self.env, plan))
        first = plan.first_usable
        if refusal:
            verdict_text = self.env._("Would be refused: %(problem)s", problem=refusal)
        elif first:
            verdict_text = self.env._("Would go through %(server)s.", server=explain.line_name(self.env, first))
        elif plan.route_id and not plan.candidates:
            verdict_text = self.env._(
                "Would not go out: no server of the route %(route)s may send it.", route=plan.route_params["route"]
            )
        else:
            verdict_text = self.env._(
                "Would wait: every server of the route is paused or at a limit; then it goes through %(server)s.",
                server=explain.line_name(self.env, plan.candidates[0]),
            )
        self.verdict = verdict_text
        self.why = "\n".join(why)
        self.line_ids = [Command.clear()] + [
            Command.create(
                {
                    "sequence": index,
                    "server_id": line.server_id or False,
                    "name": explain.line_name(self.env, line),
                    "usable": line.usable and not refusal,
                    "status": line.status or ("candidate" if line.candidate else "left_out"),
                    "reason": explain.line_text(self.env, line),
                }
            )
            for index, line in enumerate(plan.lines, 1)
        ]


class SmtpRoutingRouteExplainLine(models.TransientModel):
    """One server of a *Which Server?* answer: a candidate in the queue's order, or a server left out."""

    _name = "smtp_routing.route.explain.line"
    _description = "Which Server? Line"
    _order = "sequence, id"

    wizard_id = fields.Many2one("smtp_routing.route.explain", required=True, ondelete="cascade")
    sequence = fields.Integer(string="#")
    server_id = fields.Many2one("ir.mail_server", help="Empty: Odoo's command-line settings.")
    name = fields.Char(string="Server Name")
    usable = fields.Boolean(help="The queue would send through it now (the first usable line carries the mail).")
    status = fields.Selection(
        [
            ("candidate", "Would be tried"),
            ("cooling", "Paused after a failure"),
            ("limited", "At a limit"),
            ("left_out", "Left out"),
        ],
        required=True,
        default="candidate",
    )
    reason = fields.Char()
