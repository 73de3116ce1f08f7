# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
{
    "name": "SMTP Routing",
    "summary": "Routed, throttled, self-healing outgoing mail over several SMTP servers",
    "version": "18.0.0.1.0",
    "category": "Productivity/Discuss",
    "author": "smtp_routing developers",
    "website": "https://github.com/smtp-routing/smtp_routing",
    "license": "LGPL-3",
    "maintainers": [],
    "development_status": "Alpha",
    "depends": ["mail"],
    "external_dependencies": {"python": ["cryptography", "dnspython"]},
    "data": [],
    "installable": True,
    "application": False,
}
