#!/usr/bin/env python3
"""`make pot`: regenerate smtp_routing/i18n/smtp_routing.pot from the code (needs ODOO_PATH).

Installs smtp_routing in a fresh database of a throwaway PostgreSQL cluster and runs Odoo's
own exporter (``--i18n-export``), so the template holds exactly what Odoo would translate.
Then update ``es.po`` (every entry of the template needs a Spanish ``msgstr``; the test
suites check it).
"""

import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import devenv  # noqa: E402

POT = devenv.ROOT / "smtp_routing" / "i18n" / "smtp_routing.pot"


def main():
    odoo_path, reason = devenv.find_odoo()
    if odoo_path is None:
        sys.exit(f"make pot: {reason}")
    python = devenv.ensure_odoo_venv(odoo_path)
    POT.parent.mkdir(exist_ok=True)
    with devenv.PgCluster(port=devenv.free_port()) as cluster, tempfile.TemporaryDirectory() as workdir:
        config = devenv.write_odoo_config(workdir, odoo_path, cluster)
        odoo = [str(python), str(odoo_path / "odoo-bin"), "-c", str(config), "-d", "smtp_routing_pot"]
        subprocess.run([*odoo, "-i", "smtp_routing", "--stop-after-init", "--log-level=warn"], check=True)
        subprocess.run(
            [*odoo, f"--i18n-export={POT}", "--modules=smtp_routing", "--stop-after-init", "--log-level=warn"],
            check=True,
        )
    devenv.log(f"wrote {POT.relative_to(devenv.ROOT)}")


if __name__ == "__main__":
    main()
