# smtp_routing developer commands. Only Python 3.11 and the PostgreSQL binaries
# are needed; everything else is installed into .venv / .venv-odoo on first use.
PYTHON ?= python3

.PHONY: test demo bench pot screenshots lint readme clean

test:  ## lint + framework-free suite + Odoo suite (when ODOO_PATH names an Odoo 18 tree)
	$(PYTHON) scripts/run_tests.py

demo:  ## PostgreSQL + loopback SMTP sinks + Odoo with smtp_routing; sends a batch; serves until Ctrl-C
	$(PYTHON) scripts/demo.py

bench:  ## stock Odoo 18 vs smtp_routing: throughput, at 0/20/50 ms round trip, raw SMTP limit, limited rate (needs ODOO_PATH)
	$(PYTHON) scripts/bench.py

pot:  ## regenerate smtp_routing/i18n/smtp_routing.pot with Odoo's exporter (needs ODOO_PATH); then update es.po
	$(PYTHON) scripts/export_pot.py

screenshots:  ## the README's screenshots, from the running demo in headless Chromium (needs ODOO_PATH, chromium)
	$(PYTHON) scripts/screenshots.py

lint:  ## ruff, and pylint-odoo with OCA's mandatory checks (.pylintrc); one summary line naming both
	$(PYTHON) scripts/run_tests.py lint

readme:  ## each addon's README.md from its readme/*.md fragments (OCA's layout)
	$(PYTHON) scripts/addon_readme.py

clean:
	rm -rf .venv .venv-odoo .venv-lint
