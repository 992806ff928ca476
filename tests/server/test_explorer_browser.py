"""The explorer at /ui/ in a real browser: Playwright driving Debian's chromium against `ledger serve`.

Without /usr/bin/chromium these tests skip (saying so), except under CI=true, where .ci/run installs
it and a missing browser is a failure. Every test fails on a console error or an uncaught page error
that it did not provoke on purpose.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from ledger import Ledger
from ledger.server.access import add_token
from ledger.simulate import simulate_lines

from .serving import LEDGER, Server, start

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ADMIN = "user:sre@example.com"
OPERATIONS = 300

if not CHROMIUM.exists():
    if os.environ.get("CI") == "true":
        pytest.fail("CI=true but /usr/bin/chromium is missing: .ci/run installs it (apt-get install chromium)")
    pytest.skip("no /usr/bin/chromium here (apt-get install chromium): browser tests skipped", allow_module_level=True)

from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("explorer")
    url = f"sqlite:///{workdir}/ledger.db"
    with Ledger.open(url) as lg:
        lg.ingest(simulate_lines(OPERATIONS))
        lg.set_policy("", {"bindings": [{"role": "roles/ledger.admin", "members": [ADMIN]}]}, principal="local:test")
    tokens_file = workdir / "tokens.json"
    token = add_token(tokens_file, ADMIN)
    server = start(url, workdir, "--tokens", str(tokens_file))
    server.tokens = {ADMIN: token}
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Console:
    """Console errors and uncaught exceptions of one page; `allow` names network errors a test provokes."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        self.allowed: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and not any(allowed in message.text for allowed in self.allowed):
            self.errors.append(message.text)

    def allow(self, status: int) -> None:
        self.allowed.append(f"the server responded with a status of {status}")


def _page(browser: Browser, token: str | None) -> tuple[Page, Console]:
    context = browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
    if token:
        context.add_init_script(f"sessionStorage.setItem('ledger.token', {token!r});")
    page = context.new_page()
    page.set_default_timeout(15000)
    return page, Console(page)


@pytest.fixture
def signed_in(browser: Browser, server: Server) -> Iterator[tuple[Page, Console]]:
    page, console = _page(browser, server.tokens[ADMIN])
    yield page, console
    page.context.close()
    assert console.errors == []


def cli(server: Server, *args: str) -> bytes:
    return subprocess.run([LEDGER, "--db", server.url, *args], capture_output=True, check=False).stdout


def names_on_page(page: Page) -> list[str]:
    return [text or "" for text in page.locator("#rows td.name a").all_text_contents()]


def download(page: Page, selector: str) -> bytes:
    with page.expect_download() as info:
        page.click(selector)
    return Path(info.value.path()).read_bytes()


def test_filter_and_pages(signed_in: tuple[Page, Console], server: Server) -> None:
    page, _ = signed_in
    page.goto(f"{server.base}/ui/#/fleet")
    page.fill("#filter", 'state = "FAILED"')
    page.select_option("#size", "25")  # submits the form, filter included
    expect(page).to_have_url(re.compile(r"size=25"))
    page.wait_for_selector("#rows td.name a")
    first = names_on_page(page)
    with Ledger.open(server.url) as lg:
        expected = lg.list(filter='state = "FAILED"', page_size=25)
    assert first == [op["name"] for op in expected["operations"]]
    assert set(page.locator("#rows .badge").all_text_contents()) == {"FAILED"}
    page.click("#next")
    expect(page.locator("#page-info")).to_contain_text("Page 2 · operations 26")
    second = names_on_page(page)
    assert second and not set(second) & set(first)
    with Ledger.open(server.url) as lg:
        assert second == [
            op["name"]
            for op in lg.list(filter='state = "FAILED"', page_size=25, page_token=expected["nextPageToken"])[
                "operations"
            ]
        ]
    page.click("#prev")
    expect(page.locator("#page-info")).to_contain_text("Page 1 · operations 1\u201325")  # an en dash
    assert names_on_page(page) == first


def test_a_bad_filter_is_shown_at_its_position(signed_in: tuple[Page, Console], server: Server) -> None:
    page, console = signed_in
    console.allow(400)
    page.goto(f"{server.base}/ui/#/fleet")
    page.fill("#filter", 'state = "FAILED" AND colour = "red"')
    page.press("#filter", "Enter")
    expect(page.locator("#filter-error")).to_contain_text("position 22")
    expect(page.locator("#filter-error mark")).to_have_text("colour")


def test_as_of_shows_the_fleet_as_it_was(signed_in: tuple[Page, Console], server: Server) -> None:
    page, _ = signed_in
    with Ledger.open(server.url) as lg:
        middle = lg.list(page_size=150)["operations"][-1]["metadata"]["createTime"]
        expected = [op["name"] for op in lg.list(as_of=middle, page_size=50)["operations"]]
        now = [op["name"] for op in lg.list(page_size=50)["operations"]]
    assert expected != now
    page.goto(f"{server.base}/ui/#/fleet")
    page.wait_for_selector("#rows td.name a")
    page.fill("#asof", middle)
    page.click("button[type=submit]")
    expect(page.locator("#asof-flag")).to_be_visible()
    expect(page.locator("#rows td.name a").first).to_have_text(expected[0])
    assert names_on_page(page) == expected
    expect(page.locator("#facets")).to_contain_text("The whole fleet as of")
    page.click("#now")
    expect(page.locator("#asof-flag")).to_be_hidden()
    expect(page.locator("#rows td.name a").first).to_have_text(now[0])


def test_a_click_on_the_timeline_opens_that_operation(signed_in: tuple[Page, Console], server: Server) -> None:
    page, _ = signed_in
    page.goto(f"{server.base}/ui/#/timeline")
    page.wait_for_selector("#cursor-rows tr")
    canvas = page.locator("#tl")
    box = canvas.bounding_box()
    assert box is not None
    for y in range(34, 120, 3):  # the first lanes, sweeping across until a bar answers
        for x in range(20, int(box["width"]) - 20, 15):
            page.mouse.move(box["x"] + x, box["y"] + y)
            if page.locator("#tooltip").is_visible():
                name = page.locator("#tooltip .mono").text_content()
                page.mouse.click(box["x"] + x, box["y"] + y)
                expect(page.locator("h1")).to_have_text(name or "")
                expect(page.locator("#events li").first).to_contain_text("Created")
                return
    pytest.fail("no bar on the timeline answered the pointer")


def test_the_timeline_cursor_drives_the_as_of_list(signed_in: tuple[Page, Console], server: Server) -> None:
    page, _ = signed_in
    page.goto(f"{server.base}/ui/#/timeline")
    page.wait_for_selector("#cursor-rows tr")
    before = page.locator("#cursor-title").text_content()
    page.focus("#tl")
    for _ in range(8):
        page.keyboard.press("[")
    expect(page.locator("#cursor-title")).not_to_have_text(before or "")
    title = page.locator("#cursor-title").text_content() or ""
    at = title.removeprefix("Running at ").replace(" ", "T")
    with Ledger.open(server.url) as lg:
        expected = [op["name"] for op in lg.list(as_of=at, filter='state = "RUNNING"', page_size=20)["operations"]]
    shown = page.locator("#cursor-rows td.name a")
    expect(shown.first).to_have_text(expected[0])
    assert shown.all_text_contents() == expected


def test_an_operations_history_versions_and_chain(signed_in: tuple[Page, Console], server: Server) -> None:
    page, _ = signed_in
    with Ledger.open(server.url) as lg:
        name = next(
            op["name"]
            for op in lg.list(filter='state = "FAILED"', page_size=100)["operations"]
            if len(lg.history(op["name"])) >= 4
        )
        events = lg.history(name)
        second = lg.get(name, as_of=2)
    page.goto(f"{server.base}/ui/#/op/{name}")
    expect(page.locator("#events li")).to_have_count(len(events))
    expect(page.locator("#chain")).to_contain_text("Hash chain intact")
    expect(page.locator("#version h2")).to_contain_text(f"Version {len(events)}: Failed")
    page.click("#events button[data-version='2']")
    expect(page.locator("#version h2")).to_contain_text("Version 2: Progressed")
    expect(page.locator("#version h3").first).to_have_text("Event fields (the patch)")
    shown = page.locator("#version pre.json").last.text_content() or ""
    assert orjson.loads(shown) == second
    gap = page.locator("#events button[data-version='2'] .gap").text_content() or ""
    assert gap.startswith("+")


def test_downloads_are_the_cli_output_byte_for_byte(signed_in: tuple[Page, Console], server: Server) -> None:
    page, _ = signed_in
    with Ledger.open(server.url) as lg:
        name = lg.list(filter='state = "SUCCEEDED"', page_size=1)["operations"][0]["name"]
    page.goto(f"{server.base}/ui/#/op/{name}")
    page.wait_for_selector("#version pre.json")
    assert download(page, "#save-current") == cli(server, "get", name)
    assert download(page, "#save-history") == cli(server, "history", name)
    page.click("#events button[data-version='1']")
    expect(page.locator("#version h2")).to_contain_text("Version 1")
    assert download(page, "#save-version") == cli(server, "get", name, "--version", "1")
    page.goto(f"{server.base}/ui/#/fleet?filter=" + "verb%20%3D%20%22create%22")
    page.wait_for_selector("#rows td.name a")
    expect(page.locator("#download-page")).to_be_enabled()
    assert download(page, "#download-page") == cli(server, "list", "--filter", 'verb = "create"')


def test_audit_digest_and_verify(signed_in: tuple[Page, Console], server: Server) -> None:
    page, _ = signed_in
    page.goto(f"{server.base}/ui/#/audit")
    page.click("#run-audit")
    expect(page.locator("#audit-result .big")).to_have_text("✓ No error found")
    expect(page.locator("#audit-result")).to_contain_text(f"{OPERATIONS} operations")
    assert download(page, "#download-audit") == cli(server, "audit", "--format", "json")
    page.click("#take-digest")
    expect(page.locator("#digest-text")).to_be_visible()
    assert download(page, "#download-digest") == cli(server, "digest")
    page.click("#verify")
    expect(page.locator("#verify-result .big")).to_have_text("✓ Unchanged")
    saved: dict[str, Any] = orjson.loads(cli(server, "digest"))
    saved["digest"] = "sha256:" + "0" * 64
    page.fill("#verify-input", orjson.dumps(saved).decode())
    page.click("#verify")
    expect(page.locator("#verify-result .big")).to_have_text("✗ Changed")


def test_keyboard_alone_filters_opens_and_steps_through_versions(
    signed_in: tuple[Page, Console], server: Server
) -> None:
    page, _ = signed_in
    page.goto(f"{server.base}/ui/#/fleet")
    page.wait_for_selector("#rows td.name a")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "filter"
    page.keyboard.type('state = "CANCELLED"')
    page.keyboard.press("Enter")
    expect(page.locator("#rows .badge").first).to_have_text("CANCELLED")
    page.keyboard.press("Escape")
    page.keyboard.press("j")
    page.keyboard.press("j")
    second = names_on_page(page)[1]
    assert page.evaluate("document.activeElement.textContent") == second
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text(second)
    selected = page.locator("#events button[aria-selected='true']")
    expect(selected).to_have_count(1)
    last = int(selected.get_attribute("data-version") or 0)
    selected.focus()
    page.keyboard.press("ArrowUp")
    expect(page.locator("#version h2")).to_contain_text(f"Version {last - 1}:")
    expect(page.locator("#events button[aria-selected='true']")).to_be_focused()
    page.goto(f"{server.base}/ui/#/timeline")
    page.wait_for_selector("#cursor-rows tr")
    page.focus("#tl")
    page.keyboard.press("ArrowDown")
    label = page.locator("#tl").get_attribute("aria-label") or ""
    chosen = label.split(",")[0]
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text(chosen)


def test_the_token_is_asked_once_for_the_session(browser: Browser, server: Server) -> None:
    page, console = _page(browser, None)
    console.allow(401)
    page.goto(f"{server.base}/ui/#/fleet")
    expect(page.locator("#token-dialog")).to_be_visible()
    page.fill("#token-input", "not-a-token")
    page.press("#token-input", "Enter")
    expect(page.locator("#token-error")).to_have_text("That token was not accepted.")
    page.fill("#token-input", server.tokens[ADMIN])
    page.press("#token-input", "Enter")
    expect(page.locator("#who")).to_have_text(f"signed in as {ADMIN}")
    page.wait_for_selector("#rows td.name a")
    page.reload()
    page.wait_for_selector("#rows td.name a")
    expect(page.locator("#token-dialog")).to_be_hidden()
    page.context.close()
    assert console.errors == []


def test_a_deleted_operation_shows_its_history(signed_in: tuple[Page, Console], server: Server) -> None:
    page, _ = signed_in
    name = "projects/explorer/operations/deleted-one"
    with Ledger.open(server.url) as lg:
        lg.create(name, verb="create", occurred_at="2026-01-01T00:00:00Z")
        lg.delete(name, occurred_at="2026-01-01T00:01:00Z")
    page.goto(f"{server.base}/ui/#/op/{name}")
    expect(page.locator("#events li")).to_have_count(2)
    expect(page.locator(".op-head .badge")).to_have_text("DELETED")
    expect(page.locator("#version")).to_contain_text("gone from get and list")
    expect(page.locator("#save-current")).to_be_disabled()
    assert download(page, "#save-history") == cli(server, "history", name)
