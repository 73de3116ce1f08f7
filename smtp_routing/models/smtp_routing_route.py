# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import api, fields, models
from odoo.exceptions import ValidationError
from odoo.tools import email_domain_extract

from ..tools import dns_checks, netpolicy, planning, readiness
from .access import require_admin

PURPOSE_SELECTION = [
    ("transactional", "Transactional / system notification"),
    ("personal", "Personal (a user writing to a client)"),
    ("bulk", "Bulk mailshot"),
]
READINESS_SELECTION = [("ok", "Ready"), ("warn", "Could be better"), ("fail", "Not ready")]
CHECK_LABELS = {
    "spf": "SPF aligned",
    "dkim": "DKIM aligned",
    "dmarc": "DMARC",
    "one_click": "One-click unsubscribe",
    "tls": "TLS",
}


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
    company_id = fields.Many2one("res.company", help="Empty: every company.")
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

    # -- bulk routes: readiness for the big receivers' bulk-sender rules, volume per receiver ----------

    carries_bulk = fields.Boolean(
        compute="_compute_carries_bulk", help="The route takes bulk mail (its purposes include it, or are empty)."
    )
    # the report names the route's servers and what their domains' DNS lacks: administrators only (users may
    # read the routes offered in the composer)
    readiness_status = fields.Selection(
        READINESS_SELECTION, string="Bulk Readiness", readonly=True, copy=False, groups="base.group_system"
    )
    readiness_report = fields.Text(readonly=True, copy=False, groups="base.group_system")
    readiness_checked_at = fields.Datetime(
        string="Readiness Checked On", readonly=True, copy=False, groups="base.group_system"
    )
    bulk_threshold = fields.Integer(compute="_compute_bulk_volume")
    volume_gmail = fields.Integer(string="Gmail (24h)", compute="_compute_bulk_volume")
    volume_yahoo = fields.Integer(string="Yahoo (24h)", compute="_compute_bulk_volume")
    volume_microsoft = fields.Integer(string="Outlook.com (24h)", compute="_compute_bulk_volume")

    @api.depends("purpose_ids")
    def _compute_carries_bulk(self):
        for route in self:
            route.carries_bulk = not route.purpose_ids or "bulk" in route.purpose_ids.mapped("code")

    def _compute_bulk_volume(self):
        for route in self:
            counts = self.env["smtp_routing.delivery.log"]._smtp_routing_bulk_volumes(route.line_ids.server_id.ids)
            route.bulk_threshold = readiness.BULK_THRESHOLD
            route.volume_gmail = counts["gmail"]
            route.volume_yahoo = counts["yahoo"]
            route.volume_microsoft = counts["microsoft"]

    def _smtp_routing_envelope_domain(self, server):
        """The domain of the envelope sender: Odoo's bounce address, when the server's From filter lets it through."""
        alias_domain = (self.company_id or server.company_id or self.env.company).alias_domain_id
        bounce = alias_domain.bounce_email if alias_domain else False
        if bounce and self.env["ir.mail_server"]._match_from_filter(bounce, server.from_filter):
            return email_domain_extract(bounce)
        return None

    def action_smtp_routing_check_readiness(self):
        """Check every bulk route's servers and From domains against the bulk-sender rules; keep the report."""
        require_admin(self.env)  # it looks up DNS as superuser; users may read (and so call it on) composer routes
        Check = self.env["smtp_routing.dns.check"].sudo()
        lookup = Check._smtp_routing_dns_lookup()
        keys = self.env["smtp_routing.dkim.key"].sudo().search([("active", "=", True)])
        for route in self.filtered("carries_bulk"):
            report, statuses = [], []
            for server in route.sudo().line_ids.server_id:
                try:
                    host = server.smtp_host
                    ips = (
                        [host] if netpolicy.is_ip(host) else (lookup(host, "A") + lookup(host, "AAAA") if host else [])
                    )
                except dns_checks.DnsTemporaryError:
                    ips = []
                provider = server.smtp_routing_provider if server.smtp_routing_provider != "generic" else None
                for domain in Check._smtp_routing_sender_domains(server):
                    findings = readiness.check(
                        domain,
                        lookup,
                        ips=ips,
                        provider=provider,
                        envelope_domain=route._smtp_routing_envelope_domain(server),
                        dkim_selectors=keys.filtered(lambda k, d=domain: k.domain == d).mapped("selector"),
                        unsubscribe_base_url=server.get_base_url(),
                        encryption=server.smtp_encryption,
                        verify_certificate=server.smtp_routing_tls_verify,
                    )
                    statuses.append(readiness.status(findings))
                    report.append(f"{server.name} - {domain}:")
                    report += [f"[{f.status.upper()}] {CHECK_LABELS[f.check]}: {f.detail}" for f in findings]
            route.write(
                {
                    "readiness_status": readiness.worst(statuses) if statuses else "fail",
                    "readiness_report": "\n".join(report) or self.env._("The route has no server."),
                    "readiness_checked_at": fields.Datetime.now(),
                }
            )
        return True
