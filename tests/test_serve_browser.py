"""The review page of `text2node serve` (issue 20) in a real headless Chromium: Debian's
/usr/bin/chromium driven by Playwright (never a downloaded browser), against a real uvicorn
server started by the CLI. Skips when Chromium or Playwright is absent, except in CI
(CI=true, or TEXT2NODE_REQUIRE_BROWSER=1), where scripts/install.sh has installed Chromium."""

import json
import os
from pathlib import Path

import pytest
from test_serve import NEG_NOTE, running_server, serve_linker_dir  # noqa: F401  (fixture)

from spacy_text2node.serve.headless import CHROMIUM_ARGS

CHROMIUM = Path(os.environ.get("TEXT2NODE_CHROMIUM", "/usr/bin/chromium"))
PATH_JS = "[...document.querySelectorAll('#path li')].map(l => l.textContent).join('|')"


def _unavailable(reason: str) -> None:
    if os.environ.get("TEXT2NODE_REQUIRE_BROWSER") == "1" or os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (in CI the browser test must run, not skip)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not CHROMIUM.exists():
        _unavailable(
            f"{CHROMIUM} is absent: install Debian's chromium (apt-get install chromium) to run the browser test"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is absent: pip install 'spacy-text2node[serve]' (never `playwright install`)")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=list(CHROMIUM_ARGS),
            viewport={"width": 1280, "height": 900},
            accept_downloads=True,
        )
        yield context
        context.close()


@pytest.fixture(scope="module")
def server(serve_linker_dir):  # noqa: F811
    args = [serve_linker_dir, "--mentions", "ruler", "--log-level", "warning"]
    try:
        import negspacy  # noqa: F401

        args.append("--negation")
    except ImportError:
        pass
    with running_server(args) as url:
        yield url


def test_review_page_links_a_note_and_shows_the_path_of_a_clicked_mention(browser, server, tmp_path):
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(server + "/")
    page.wait_for_function("document.querySelector('#info').textContent.includes('tiny_taxonomy')")

    # an empty note is refused in the page, with a message
    page.click("#link-btn")
    assert page.is_visible("#error") and "empty" in page.text_content("#error")

    page.fill("#note", NEG_NOTE)
    page.click("#link-btn")
    page.wait_for_selector("#render mark.entity >> nth=1")
    marks = page.locator("#render mark.entity")
    assert marks.count() == 2
    assert "bronchial asthma" in marks.nth(0).inner_text() and "ASTH Asthma" in marks.nth(0).inner_text()
    assert "influenza" in marks.nth(1).inner_text() and "FLU Influenza" in marks.nth(1).inner_text()
    negation = "negex" in page.text_content("#info") or "negation on" in page.text_content("#info")
    if negation:
        assert "negated" in marks.nth(1).get_attribute("class") and "negated" not in marks.nth(0).get_attribute("class")
    assert not page.is_visible("#error")

    # click a mention: its concept, candidates and the path from the root
    marks.nth(1).click(position={"x": 8, "y": 8})
    # FLU has two parents (VIR, RESP): the path goes through the shallower one
    page.wait_for_function(f"{PATH_JS} === 'D Disease|RESP Respiratory disease|FLU Influenza'")
    assert page.text_content("#mention-text") == "influenza"
    assert page.is_visible("#mention-neg") == negation
    first = page.locator("#candidates tbody tr").first
    assert first.inner_text().split()[:2] == ["1", "FLU"] and "chosen" in first.get_attribute("class")

    marks.nth(0).click(position={"x": 8, "y": 8})
    page.wait_for_function("document.querySelector('#mention-text').textContent === 'bronchial asthma'")
    page.wait_for_function(f"{PATH_JS} === 'D Disease|RESP Respiratory disease|ASTH Asthma'")
    assert not page.is_visible("#mention-neg")  # asthma is not negated
    # a candidate's row shows that candidate's path
    page.locator("#candidates tbody tr").nth(1).click()
    page.wait_for_function(f"!{PATH_JS}.endsWith('ASTH Asthma') && {PATH_JS}.startsWith('D Disease|')")
    shot = tmp_path / "review.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"review page screenshot: {shot}")
    assert shot.stat().st_size > 10_000

    # the JSON download is the record of `text2node link`
    with page.expect_download() as dl:
        page.click("#download")
    saved = tmp_path / "note.json"
    dl.value.save_as(str(saved))
    record = json.loads(saved.read_text(encoding="utf8"))
    assert [(s["text"], s["concept_id"]) for s in record["spans"]] == [
        ("bronchial asthma", "ASTH"),
        ("influenza", "FLU"),
    ]
    assert "html" not in record and record["id"] == "note"
    assert errors == []
    page.close()


def test_review_page_opens_a_note_file_and_shows_server_errors(browser, server, tmp_path):
    page = browser.new_page()
    page.goto(server + "/")
    page.wait_for_function("document.querySelector('#info').textContent.includes('tiny_taxonomy')")
    note = tmp_path / "visit-12.txt"
    note.write_text("Follow-up for tuberculosis and gout.\n", encoding="utf8")
    page.set_input_files("#file", str(note))
    page.wait_for_selector("#render mark.entity >> nth=1")
    texts = page.locator("#render mark.entity").all_inner_texts()
    assert len(texts) == 2 and "tuberculosis" in texts[0] and "TB Tuberculosis" in texts[0] and "GOUT Gout" in texts[1]
    assert page.input_value("#note").startswith("Follow-up")
    # the server's 4xx message reaches the page (a note over --max-chars)
    page.fill("#note", "x" * 100_001)
    page.click("#link-btn")
    page.wait_for_selector("#error:not([hidden])")
    assert page.text_content("#error").startswith("413:") and "--max-chars" in page.text_content("#error")
    page.close()
