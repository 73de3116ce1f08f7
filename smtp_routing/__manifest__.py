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
    "data": [
        "security/ir.model.access.csv",
        "views/ir_mail_server_views.xml",
        "views/smtp_routing_delivery_log_views.xml",
        "wizard/smtp_routing_test_email_views.xml",
    ],
    "post_init_hook": "post_init_hook",
    "uninstall_hook": "uninstall_hook",
    "installable": True,
    "application": False,
}
