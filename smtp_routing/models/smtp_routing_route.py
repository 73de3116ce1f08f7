# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import api, fields, models
from odoo.exceptions import ValidationError

from ..tools import planning

PURPOSE_SELECTION = [
    ("transactional", "Transactional / system notification"),
    ("personal", "Personal (a user writing to a client)"),
    ("bulk", "Bulk mailshot"),
]


class SmtpRoutingRoute(models.Model):
    _name = "smtp_routing.route"
    _description = "Outgoing Mail Route"
    _order = "sequence, id"

    name = fields.Char(required=True, translate=True)
    active = fields.Boolean(default=True)
    sequence = fields.Integer(default=10, help="Routes are tried in this order; the first whose conditions hold wins.")
    is_default = fields.Boolean(string="Default Route", help="Takes the mail no other route takes (one per company).")
    purpose_ids = fields.Many2many("smtp_routing.purpose", string="Purposes", help="Empty: any purpose.")
    lang_ids = fields.Many2many(
        "res.lang", string="Recipient Languages", help="Empty: any language.", context={"active_test": False}
    )
    company_id = fields.Many2one("res.company", string="Company", help="Empty: every company.")
    model_ids = fields.Many2many(
        "ir.model", string="Source Documents", help="Empty: mail about any kind of document.", ondelete="cascade"
    )
    line_ids = fields.One2many("smtp_routing.route.line", "route_id", string="Servers", copy=True)
    allow_in_composer = fields.Boolean(
        string="Selectable When Writing",
        help="Users may choose this route in the email composer (the 'Email Other' route).",
    )

    @api.constrains("is_default", "company_id", "active")
    def _check_one_default(self):
        for route in self.filtered(lambda r: r.is_default and r.active):
            others = self.search_count(
                [("id", "!=", route.id), ("is_default", "=", True), ("company_id", "=", route.company_id.id)]
            )
            if others:
                raise ValidationError(
                    self.env._(
                        "There is already a default route for %(company)s; unmark it first.",
                        company=route.company_id.name or self.env._("all companies"),
                    )
                )

    @api.constrains("line_ids")
    def _check_servers(self):
        for route in self:
            if not route.line_ids:
                raise ValidationError(self.env._("The route %(route)s needs at least one server.", route=route.name))
            servers = route.line_ids.mapped("server_id")
            if len(servers) != len(route.line_ids):
                raise ValidationError(self.env._("A server appears twice in the route %(route)s.", route=route.name))

    def _smtp_routing_spec(self):
        self.ensure_one()
        return planning.Route(
            id=self.id,
            name=self.name,
            sequence=self.sequence,
            is_default=self.is_default,
            server_ids=tuple(self.line_ids.sorted(lambda line: (line.sequence, line.id)).mapped("server_id").ids),
            purposes=frozenset(self.purpose_ids.mapped("code")),
            langs=frozenset(self.lang_ids.mapped("code")),
            company_id=self.company_id.id or None,
            models=frozenset(self.model_ids.mapped("model")),
        )


class SmtpRoutingRouteLine(models.Model):
    _name = "smtp_routing.route.line"
    _description = "Outgoing Mail Route Server"
    _order = "sequence, id"

    route_id = fields.Many2one("smtp_routing.route", required=True, ondelete="cascade", index=True)
    sequence = fields.Integer(default=10)
    server_id = fields.Many2one("ir.mail_server", string="Server", required=True, ondelete="cascade")


class SmtpRoutingPurpose(models.Model):
    """The three purposes as records, so routes can take several in a many2many."""

    _name = "smtp_routing.purpose"
    _description = "Mail Purpose"
    _order = "sequence"

    name = fields.Char(required=True, translate=True)
    code = fields.Selection(PURPOSE_SELECTION, required=True)
    sequence = fields.Integer()

    _sql_constraints = [("code_unique", "UNIQUE(code)", "One record per purpose.")]
