# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo.tests import TransactionCase, tagged


@tagged("post_install", "-at_install", "smtp_routing")
class TestInstall(TransactionCase):
    def test_module_installed_with_dependencies(self):
        module = self.env["ir.module.module"].search([("name", "=", "smtp_routing")])
        self.assertEqual(module.state, "installed")
        self.assertIn("mail", module.dependencies_id.mapped("name"))
