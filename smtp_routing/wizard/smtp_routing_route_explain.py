# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import api, fields, models
from odoo.tools import email_normalize
from odoo.tools.misc import format_datetime

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

    def _route_words(self, route, facts):
        """Why ``route`` takes the mail, in the reader's words and language."""
        if facts.forced_route_id == route.id:
            return self.env._("Route %(route)s, chosen by the template.", route=route.name)
        held = []
        purposes = dict(self._fields["purpose"]._description_selection(self.env))
        if route.purpose_ids:
            held.append(self.env._("the kind of mail is %(purpose)s", purpose=purposes.get(facts.purpose)))
        if route.lang_ids:
            held.append(self.env._("the recipient reads %(language)s", language=self._language_name(facts.lang)))
        if route.company_id:
            held.append(self.env._("the company is %(company)s", company=route.company_id.name))
        if route.model_ids:
            held.append(self.env._("the mail is about a %(document)s", document=self.model_id.name or facts.model))
        if held and not route.is_default:
            return self.env._("Route %(route)s, because %(conditions)s.", route=route.name, conditions="; ".join(held))
        if route.is_default:
            return self.env._("Route %(route)s, the default route: no other route applies.", route=route.name)
        return self.env._("Route %(route)s, which takes any mail.", route=route.name)

    def _language_name(self, code):
        return dict(self.env["res.lang"].get_installed()).get(code, code) or self.env._("unknown")

    def _when(self, value):
        return format_datetime(self.env, value) if value else ""

    def _server_line(self, index, candidate, route, own_server_id, names):
        if candidate.server_id == own_server_id:
            role = self.env._("the author's own server (Preferences)")
        else:
            position = route.line_ids.sorted(lambda line: (line.sequence, line.id)).server_id.ids.index(
                candidate.server_id
            )
            role = (
                self.env._("first server of the route")
                if position == 0
                else self.env._("stand-in number %(number)s, if the ones above fail", number=position)
            )
        if not candidate.covers_from:
            role = self.env._(
                "%(role)s; it may not send from this address, so the mail would go out from the notification address",
                role=role,
            )
        return f"{index}. {names.get(candidate.server_id)}: {role}"

    def _skip_words(self, skip, cooling, limited):
        if skip.code == "cooling":
            return self.env._("paused after a failure until %(when)s", when=self._when(cooling.get(skip.server_id)))
        if skip.code == "limited":
            return self.env._("a sending limit is used up until %(when)s", when=self._when(limited.get(skip.server_id)))
        return {
            "personal_server": self.env._("another user's own server"),
            "other_company": self.env._("it belongs to another company"),
            "from_not_covered": self.env._("it may not send from this address (its From filter)"),
        }.get(skip.code, skip.detail)

    def _explain(self):
        """The verdict first ("Would go through X" / "Would be refused: ..."), then why, in plain words."""
        Server = self.env["ir.mail_server"].sudo()
        servers = Server.search([], order="sequence, id")
        names = {server.id: server.name for server in servers}
        email_from = self.email_from or (self.template_id.email_from if self.template_id else "")
        why = []
        author = self.author_id
        refusal = None
        if author and email_from:
            refusal = self.env["mail.mail"]._smtp_routing_send_as_problem(author, email_from)
            if not refusal:
                why.append(
                    self.env._(
                        "%(user)s may send as %(address)s.",
                        user=author.name,
                        address=email_normalize(email_from) or email_from,
                    )
                )
        cooling, _failing = self.env["smtp_routing.server.state"].sudo()._smtp_routing_health(servers)
        limited = {s.id: s.smtp_routing_next_slot for s in servers if s.smtp_routing_health == "limited"}
        template_route = self.template_id.smtp_routing_route_id
        own_server_id = self._own_server_id(author, email_from)
        facts = routing.MailFacts(
            purpose=self.purpose,
            email_from=email_normalize(email_from or "") or "",
            lang=self.lang or self.partner_id.lang or None,
            company_id=self.company_id.id,
            model=self.model_id.model or None,
            forced_route_id=template_route.id or None,
            forced_by="template" if template_route else "",
            author_server_id=own_server_id,
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
        order, verdict = [], None
        if decision.route_id is None:
            why.append(self.env._("No route applies: Odoo chooses by priority and by what each server may send."))
            primary, smtp_from = Server._find_mail_server(email_from or "")
            if primary:
                order = [primary] + [
                    s
                    for s in Server._smtp_routing_order(servers - primary)
                    if Server._match_from_filter(smtp_from, s.from_filter)
                ]
                for index, server in enumerate(order, 1):
                    line = f"{index}. {server.name}"
                    if server.id in cooling:
                        line += " - " + self.env._(
                            "paused after a failure until %(when)s", when=self._when(cooling[server.id])
                        )
                    why.append(line)
            else:
                why.append(self.env._("No outgoing server is set up: Odoo's command-line mail settings are used."))
            ready = [s.name for s in order if s.id not in cooling]
            chosen = ready[0] if ready else (order[0].name if order else self.env._("Odoo's command-line settings"))
        else:
            route = self.env["smtp_routing.route"].sudo().browse(decision.route_id)
            why.append(self._route_words(route, facts))
            for index, candidate in enumerate(decision.candidates, 1):
                why.append(self._server_line(index, candidate, route, own_server_id, names))
            for skip in decision.skipped:
                why.append(
                    self.env._(
                        "Not now: %(server)s - %(reason)s",
                        server=names.get(skip.server_id),
                        reason=self._skip_words(skip, cooling, limited),
                    )
                )
            waiting = {s.server_id for s in decision.skipped if s.code in ("cooling", "limited")}
            ready = [names[c.server_id] for c in decision.candidates if c.server_id not in waiting]
            chosen = ready[0] if ready else None
            if not decision.candidates:
                verdict = self.env._(
                    "Would not go out: no server of the route %(route)s may send it.", route=route.name
                )
        if refusal:
            verdict = self.env._("Would be refused: %(problem)s", problem=refusal)
        elif chosen:
            verdict = self.env._("Would go through %(server)s.", server=chosen)
        elif decision.route_id is not None and decision.candidates:
            verdict = self.env._(
                "Would wait: every server of the route is paused or at a limit; then it goes through %(server)s.",
                server=names[decision.candidates[0].server_id],
            )
        return "\n".join([verdict, "", self.env._("Why:"), *why])
