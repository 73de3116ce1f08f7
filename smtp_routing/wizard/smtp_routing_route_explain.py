# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import api, fields, models
from odoo.tools import email_normalize

from ..models.smtp_routing_route import PURPOSE_SELECTION
from ..tools import routing, send_as


class SmtpRoutingRouteExplain(models.TransientModel):
    """ "Which server?": the candidates a mail would get, in order, with the reasons."""

    _name = "smtp_routing.route.explain"
    _description = "Which Server?"

    email_from = fields.Char(string="From", default=lambda self: self.env.user.email_formatted)
    partner_id = fields.Many2one("res.partner", string="Recipient")
    lang = fields.Selection(
        selection="_lang_selection", string="Recipient Language", help="Empty: the recipient's language."
    )
    template_id = fields.Many2one("mail.template", string="Template")
    author_id = fields.Many2one(
        "res.users", string="Author", default=lambda self: self.env.user, domain=[("share", "=", False)]
    )
    purpose = fields.Selection(PURPOSE_SELECTION, default="personal", required=True)
    model_id = fields.Many2one("ir.model", string="Source Document")
    company_id = fields.Many2one("res.company", default=lambda self: self.env.company, required=True)
    result = fields.Text(string="Decision", compute="_compute_result")

    @api.model
    def _lang_selection(self):
        return self.env["res.lang"].get_installed()

    @api.depends("email_from", "partner_id", "lang", "template_id", "author_id", "purpose", "model_id", "company_id")
    def _compute_result(self):
        for wizard in self:
            wizard.result = wizard._explain()

    def _own_server_id(self, author, email_from):
        """As the queue: the author's preferred server for personal mail; their personal server only for
        mail from their approved address."""
        server = author.sudo().smtp_routing_server_id
        if self.purpose != "personal" or not server:
            return None
        if server.smtp_routing_owner_id and (
            server.smtp_routing_owner_id != author
            or send_as.normalize(email_from) != send_as.normalize(author.sudo().smtp_routing_approved_email)
        ):
            return None
        return server.id

    def _explain(self):
        Server = self.env["ir.mail_server"].sudo()
        servers = Server.search([], order="sequence, id")
        names = {server.id: server.name for server in servers}
        email_from = self.email_from or (self.template_id.email_from if self.template_id else "")
        lines = []
        author = self.author_id
        if author and email_from:
            problem = self.env["mail.mail"]._smtp_routing_send_as_problem(author, email_from)
            lines.append(
                self.env._("Send-As: refused. %(problem)s", problem=problem)
                if problem
                else self.env._(
                    "Send-As: %(user)s may send as %(address)s.",
                    user=author.name,
                    address=email_normalize(email_from) or email_from,
                )
            )
        cooling, _failing = self.env["smtp_routing.server.state"].sudo()._smtp_routing_health(servers)
        limited = {s.id: s.smtp_routing_next_slot for s in servers if s.smtp_routing_health == "limited"}
        route = self.template_id.smtp_routing_route_id
        facts = routing.MailFacts(
            purpose=self.purpose,
            email_from=email_normalize(email_from or "") or "",
            lang=self.lang or self.partner_id.lang or None,
            company_id=self.company_id.id,
            model=self.model_id.model or None,
            forced_route_id=route.id or None,
            forced_by="template" if route else "",
            author_server_id=self._own_server_id(author, email_from),
        )
        routes = [r._smtp_routing_spec() for r in self.env["smtp_routing.route"].sudo().search([])]
        decision = routing.decide(
            facts,
            routes,
            {s.id: s._smtp_routing_spec() for s in servers},
            Server._match_from_filter,
            cooling=cooling,
            limited=limited,
        )
        if decision.route_id is None:
            primary, smtp_from = Server._find_mail_server(email_from or "")
            lines.append(decision.route_reason)
            if primary:
                order = [primary] + [
                    s
                    for s in Server._smtp_routing_order(servers - primary)
                    if Server._match_from_filter(smtp_from, s.from_filter)
                ]
                for index, server in enumerate(order, 1):
                    lines.append(
                        f"{index}. {server.name}"
                        + (
                            self.env._(" (cooling down until %(until)s)", until=cooling[server.id])
                            if server.id in cooling
                            else ""
                        )
                    )
            else:
                lines.append(self.env._("No outgoing server: Odoo's command-line settings are used."))
        else:
            lines.append(routing.explain(decision, names))
        return "\n".join(lines)
