# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools import email_domain_extract, email_normalize

from ..tools import dns_checks, hostport, netpolicy

DNS_NAMESERVER = "smtp_routing.dns_nameserver"
STATUS_SELECTION = [("ok", "Good"), ("warn", "Could be better"), ("fail", "Problem"), ("error", "Not checked")]


def _dns_line(check, summary):
    """ "MX: mx.example", not "MX: MX: mx.example": the check's name once."""
    label = check.upper()
    if summary.upper().startswith(label + ":"):
        return summary
    return f"{label}: {summary}"


class SmtpRoutingDnsCheck(models.Model):
    """One SPF/DKIM/DMARC diagnosis of a sender domain for a server; a row is kept when the result changes."""

    _name = "smtp_routing.dns.check"
    _description = "Deliverability Check"
    _order = "date desc, id desc"

    server_id = fields.Many2one("ir.mail_server", required=True, ondelete="cascade", index=True)
    date = fields.Datetime(required=True, default=fields.Datetime.now)
    domain = fields.Char(required=True)
    status = fields.Selection(STATUS_SELECTION, required=True)
    report = fields.Text()
    fixes = fields.Text(string="Records to Publish")

    # -- checking servers (ir.mail_server's Deliverability tab, its button and cron) -----------
    @api.model
    def _smtp_routing_dns_status(self, servers):
        """Compute ``servers``' deliverability badge and report from their latest check per domain."""
        for server in servers:
            latest = {}
            for check in server.smtp_routing_dns_check_ids.sorted(lambda c: (c.date, c.id), reverse=True):
                latest.setdefault(check.domain, check)
            checks = list(latest.values())
            order = ["fail", "error", "warn", "ok"]
            server.smtp_routing_dns_status = min((c.status for c in checks), key=order.index) if checks else False
            server.smtp_routing_dns_report = (
                "\n\n".join(
                    f"{c.domain}:\n{c.report}" + (f"\n{self.env._('To publish:')}\n{c.fixes}" if c.fixes else "")
                    for c in sorted(checks, key=lambda c: c.domain)
                )
                or False
            )

    @api.model
    def _smtp_routing_sender_domains(self, server):
        """The domains ``server`` sends for: its From filter, its From email, else the company's."""
        server.ensure_one()
        domains = []
        for part in [p.strip() for p in (server.from_filter or "").split(",")] + [server.smtp_routing_from_email]:
            if part:
                domain = email_domain_extract(email_normalize(part) or "") or ("" if "@" in part else part.lower())
                if domain and domain not in domains:
                    domains.append(domain)
        if not domains:
            company_email = (server.company_id or self.env.company).email
            domain = email_domain_extract(email_normalize(company_email or "") or "")
            if domain:
                domains.append(domain)
        return domains

    @api.model
    def _smtp_routing_dns_lookup(self):
        """DNS as receivers see it; ``smtp_routing.dns_nameserver`` (host[:port]) overrides the system's."""
        import dns.resolver

        setting = self.env["ir.config_parameter"].sudo().get_param(DNS_NAMESERVER)
        resolver = dns.resolver.Resolver(configure=not setting)
        if setting:
            try:
                host, port = hostport.parse_nameserver(setting)
            except hostport.HostPortError as error:
                raise UserError(
                    self.env._(
                        "The system parameter %(key)s must be an IP address with an optional port, not %(value)r.",
                        key=DNS_NAMESERVER,
                        value=setting,
                    )
                ) from error
            resolver.nameservers = [host]
            resolver.port = port
        resolver.lifetime = 5.0
        return dns_checks.resolver_lookup(resolver)

    @api.model
    def _smtp_routing_check_servers(self, servers):
        """Check SPF, DKIM and DMARC of every domain ``servers`` send for; keep a row when a result changes."""
        lookup = self._smtp_routing_dns_lookup()
        Check = self.sudo()
        keys = self.env["smtp_routing.dkim.key"].sudo().search([("active", "=", True)])
        for server in servers:
            try:
                ips = (
                    [server.smtp_host]
                    if netpolicy.is_ip(server.smtp_host)
                    else (lookup(server.smtp_host, "A") + lookup(server.smtp_host, "AAAA") if server.smtp_host else [])
                )
            except dns_checks.DnsTemporaryError:
                ips = []
            provider = server.smtp_routing_provider if server.smtp_routing_provider != "generic" else None
            for domain in self._smtp_routing_sender_domains(server):
                selectors = keys.filtered(lambda k, d=domain: k.domain == d).mapped("selector")
                try:
                    diagnosis = dns_checks.diagnose(domain, lookup, ips=ips, provider=provider, selectors=selectors)
                    status = diagnosis.status
                    report = "\n".join(
                        f"[{f.status.upper()}] {_dns_line(f.check, f.summary)}" for f in diagnosis.findings
                    )
                    fixes = "\n".join(f.fix for f in diagnosis.findings if f.fix) or False
                except Exception as error:  # noqa: BLE001 - a DNS failure is a result to show, not a crash
                    status, report, fixes = "error", self.env._("DNS check failed: %(error)s", error=error), False
                last = Check.search([("server_id", "=", server.id), ("domain", "=", domain)], limit=1)
                if not last or (last.status, last.report, last.fixes or False) != (status, report, fixes):
                    Check.create(
                        {"server_id": server.id, "domain": domain, "status": status, "report": report, "fixes": fixes}
                    )
            server.sudo().smtp_routing_dns_checked_at = fields.Datetime.now()
