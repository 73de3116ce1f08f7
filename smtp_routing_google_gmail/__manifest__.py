# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
{
    "name": "SMTP Routing - Google Gmail",
    "summary": "Bridge: Odoo's Gmail OAuth servers with encrypted tokens, token health and routing",
    "version": "18.0.0.1.0",
    "category": "Hidden",
    "author": "smtp_routing developers",
    "website": "https://github.com/smtp-routing/smtp_routing",
    "license": "LGPL-3",
    "maintainers": [],
    "development_status": "Alpha",
    "depends": ["smtp_routing", "google_gmail"],
    "data": ["views/ir_mail_server_views.xml", "views/res_users_views.xml"],
    "post_init_hook": "post_init_hook",
    "uninstall_hook": "uninstall_hook",
    "auto_install": True,
    "installable": True,
}
