"""Screenshots of the explorer's pages over 10,000 simulated operations, for docs/.

    .venv/bin/python scripts/screenshots.py            # writes docs/ui-*.png

Seeds a fresh SQLite ledger (the simulated workload, seed 0), serves it with `ledger serve`, and
drives Debian's chromium (/usr/bin/chromium) through Playwright.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from browser import launch, seed, serving, signed_in_page
from playwright.sync_api import sync_playwright

DOCS = Path(__file__).resolve().parent.parent / "docs"
FAILED_OPERATION = "projects/proj-005/locations/europe-west4/operations/op-000009989"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--operations", type=int, default=10000)
    parser.add_argument("--out", type=Path, default=DOCS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        url = f"sqlite:///{work}/ledger.db"
        seed(url, args.operations)
        with serving(url, Path(work)) as explorer, sync_playwright() as p:
            browser = launch(p)
            page = signed_in_page(browser, explorer)
            shots(page, explorer.base, args.out)
            browser.close()


def shots(page: object, base: str, out: Path) -> None:
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    page.goto(f"{base}/ui/#/fleet?filter=" + "state%20%3D%20%22FAILED%22%20AND%20verb%20%3D%20%22create%22")
    page.wait_for_selector("#rows td.name a")
    page.wait_for_selector("#facets h2")
    save(page, out / "ui-fleet.png")
    page.fill("#filter", 'state = "FAILED" AND createTime > 2026-01-02')
    page.click("button[type=submit]")
    page.wait_for_selector("#filter-error mark")
    save(page, out / "ui-filter-error.png")
    page.goto(f"{base}/ui/#/timeline")
    page.wait_for_selector("#cursor-rows tr")
    page.wait_for_timeout(400)
    save(page, out / "ui-timeline.png")
    page.goto(f"{base}/ui/#/op/{FAILED_OPERATION}")
    page.wait_for_selector("#chain:not(:empty)")
    page.wait_for_selector("#version pre.json")
    page.wait_for_function("() => document.getElementById('chain').textContent.includes('intact')")
    save(page, out / "ui-operation.png")
    page.goto(f"{base}/ui/#/audit")
    page.click("#run-audit")
    page.wait_for_selector("#audit-result .big")
    page.click("#take-digest")
    page.wait_for_selector("#digest-text:not([hidden])")
    page.click("#verify")
    page.wait_for_selector("#verify-result .big")
    save(page, out / "ui-audit.png")


def save(page: object, path: Path) -> None:
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=False)
    print(path)


if __name__ == "__main__":
    main()
