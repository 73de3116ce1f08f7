# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""The committed template matches the code, and Spanish loads into Odoo where users read it."""

from pathlib import Path

from odoo.tests import TransactionCase, tagged
from odoo.tools.translate import PoFileReader, TranslationModuleReader

I18N = Path(__file__).resolve().parent.parent / "i18n"


def po_entries(path):
    with open(path, "rb") as handle:
        return {entry["src"]: entry["value"] for entry in PoFileReader(handle) if entry["src"]}


@tagged("post_install", "-at_install", "smtp_routing")
class TestI18n(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.spanish = po_entries(I18N / "es.po")

    def test_the_template_is_up_to_date(self):
        exported = {
            source
            for _module, _type, _name, _id, source, _value, _comments in TranslationModuleReader(
                self.env.cr, modules=["smtp_routing"]
            )
            if source
        }
        template = set(po_entries(I18N / "smtp_routing.pot"))
        self.assertFalse(exported - template, "strings missing from smtp_routing.pot: run make pot, then translate")
        self.assertFalse(template - exported, "smtp_routing.pot has strings the code lost: run make pot")

    def test_spanish_reaches_labels_views_and_messages(self):
        self.env["res.lang"]._activate_lang("es_ES")
        self.env["ir.module.module"]._load_module_terms(["smtp_routing"], ["es_ES"], overwrite=True)
        spanish_env = self.env(context=dict(self.env.context, lang="es_ES"))
        # a field label
        label = spanish_env["ir.mail_server"].fields_get(["smtp_routing_health"])["smtp_routing_health"]["string"]
        self.assertEqual(label, self.spanish["Status"])
        # a selection value
        selection = dict(
            spanish_env["ir.mail_server"].fields_get(["smtp_routing_health"])["smtp_routing_health"]["selection"]
        )
        self.assertEqual(selection["cooling"], self.spanish["Cooling down"])
        # a view (the server form's tab)
        arch = spanish_env["ir.mail_server"].get_views([(False, "form")])["views"]["form"]["arch"]
        self.assertIn(f'string="{self.spanish["Deliverability"]}"', arch)
        # a message raised by the code
        message = spanish_env._("Pick an outgoing mail server first, and save.")
        self.assertEqual(message, self.spanish["Pick an outgoing mail server first, and save."])
        self.assertNotEqual(message, "Pick an outgoing mail server first, and save.")
