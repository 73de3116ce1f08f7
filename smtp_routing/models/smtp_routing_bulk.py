# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Bulk routes: readiness for Gmail's, Yahoo's and Outlook.com's bulk-sender rules, and volume per big receiver."""

from datetime import timedelta

from odoo import api, fields, models
from odoo.tools import email_domain_extract

from ..tools import dns_checks, netpolicy, readiness

READINESS_SELECTION = [("ok", "Ready"), ("warn", "Could be better"), ("fail", "Not ready")]
CHECK_LABELS = {
    "spf": "SPF aligned",
    "dkim": "DKIM aligned",
    "dmarc": "DMARC",
    "one_click": "One-click unsubscribe",
    "tls": "TLS",
}


def _volumes(env, server_ids):
    """{receiver: mails sent in the last 24 hours} through these servers, from the delivery history."""
    if not server_ids:
        return dict.fromkeys(readiness.RECEIVERS, 0)
    env["smtp_routing.delivery.log"].flush_model(["server_id", "outcome", "date", "recipients"])
    env.cr.execute(
        "SELECT recipients FROM smtp_routing_delivery_log WHERE server_id = ANY(%s) AND outcome = 'sent' "
        "AND date >= %s AND recipients IS NOT NULL",
        [list(server_ids), fields.Datetime.now() - timedelta(hours=24)],
    )
    return readiness.daily_volume(row[0] for row in env.cr.fetchall())


def _volume_text(env, counts):
    threshold = f"{readiness.BULK_THRESHOLD:,}"
    parts = []
    for name, label in readiness.RECEIVERS.items():
        count = f"{counts[name]:,}"
        parts.append(env._("%(receiver)s %(count)s / %(threshold)s", receiver=label, count=count, threshold=threshold))
    return " · ".join(parts)


class SmtpRoutingRoute(models.Model):
    _inherit = "smtp_routing.route"

    carries_bulk = fields.Boolean(
        compute="_compute_carries_bulk", help="The route takes bulk mail (its purposes include it, or are empty)."
    )
    readiness_status = fields.Selection(READINESS_SELECTION, string="Bulk Readiness", readonly=True, copy=False)
    readiness_report = fields.Text(readonly=True, copy=False)
    readiness_checked_at = fields.Datetime(string="Readiness Checked On", readonly=True, copy=False)
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
            counts = _volumes(self.env, route.line_ids.server_id.ids)
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
        Server = self.env["ir.mail_server"].sudo()
        lookup = Server._smtp_routing_dns_lookup()
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
                for domain in server._smtp_routing_sender_domains():
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


class IrMailServer(models.Model):
    # Kept beside the bulk routes it serves: the bulk-volume counters belong to this feature, not to the server
    # form's own file (one file per feature; the model's own fields live in ir_mail_server.py).
    _inherit = "ir.mail_server"  # pylint: disable=consider-merging-classes-inherited

    smtp_routing_bulk_volume = fields.Char(
        string="Bulk Volume (24h)",
        compute="_compute_smtp_routing_bulk_volume",
        help="Mail sent in the last 24 hours to Gmail, Yahoo and Outlook.com, against the 5,000 a day from which "
        "they apply their bulk-sender rules. Shown for servers of bulk routes.",
        groups="base.group_system",  # counters are for administrators only
    )

    def _compute_smtp_routing_bulk_volume(self):
        lines = self.env["smtp_routing.route.line"].sudo().search([("server_id", "in", self.ids)])
        bulk_servers = lines.filtered(lambda line: line.route_id.carries_bulk).server_id
        for server in self:
            if server.id and server in bulk_servers:
                server.smtp_routing_bulk_volume = _volume_text(self.env, _volumes(self.env, server.ids))
            else:
                server.smtp_routing_bulk_volume = False
