"""axe-core, run in the browser tests' pages: what it finds, a line per rule, page and node."""

from __future__ import annotations

from importlib import resources
from typing import Any

from playwright.sync_api import Page

# axe-core itself (axe.min.js), as the axe-playwright-python package ships it: installed with
# the dev extra at its locked version, never fetched while the tests run.
AXE_SCRIPT = resources.files("axe_playwright_python").joinpath("axe.min.js").read_text()
# axe-core's own default set (WCAG 2.0-2.2 A and AA, and its best practices), every impact.
RUN_AXE = "() => axe.run(document, {resultTypes: ['violations']})"


def axe_violations(page: Page, name: str) -> list[str]:
    """Run axe-core on the page as it is now; return one line per node that breaks a rule."""
    if not page.evaluate("() => 'axe' in window"):
        # Through DevTools, as Playwright evaluates everything: the page's CSP allows no
        # script of ours, and does not apply here.
        page.evaluate(AXE_SCRIPT)
    results: dict[str, Any] = page.evaluate(RUN_AXE)
    return [
        f"{name}: {rule['id']} ({rule['impact']}) at {' '.join(node['target'])}:"
        f" {' '.join(node['failureSummary'].split())}"
        for rule in results["violations"]
        for node in rule["nodes"]
    ]
