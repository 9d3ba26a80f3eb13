"""report.html as a reviewer sees it: the bundles of a passing run (README's first command) and a failing run of
the sim suites (a test of the user's with a wrong expectation), rendered in headless Chromium
(tests/support/browser.py), checked on what is painted: the verdict banner's words and colours, every GPU picture
with a size and with its instances' colours on screen, no request beyond the file itself, and no character that the
default fonts cannot draw. Skipped where there is no Chromium, except under CI.

Screenshots of both pages are left in the test's tmp_path (report-passed.png, report-failed.png)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from mig_conformance.plugin.hooks import suites_dir
from mig_conformance.report.svg import EMPTY_FILL, PALETTE
from mig_conformance.report.view import undrawable
from support import png
from support.browser import Browser, chromium

WRONG_EXPECTATION = """
    from mig_conformance.mig.plans import layout_pictures

    def test_one_slice_more_than_the_gpus_have(mig_nodes, mig_reconfigure, mig_expect, mig_record):
        node = mig_nodes[-1]
        want = mig_expect(node, "all-balanced", "mixed")
        done = mig_reconfigure(node, "all-balanced", "mixed")
        expected = {k: v + 1 for k, v in want.allocatable.items() if v}
        measured = {k: v for k, v in done.allocatable.items() if k in expected}
        mig_record(category="custom", node=done.name, instance_type=done.instance_type, config="all-balanced",
                   strategy="mixed", expected={"allocatable": expected}, measured={"allocatable": measured},
                   layout=layout_pictures(want.gpus))
        assert measured == expected, f"{done.name}: allocatable {measured} != expected {expected}"
"""
#: The verdict banner's background and border (render_html.CSS), as the browser computes them.
BANNER = {"Passed": ("rgb(236, 253, 245)", "rgb(5, 150, 105)"), "Failed": ("rgb(254, 242, 242)", "rgb(220, 38, 38)")}

SEEN = """(() => {
  const box = (el) => { const r = el.getBoundingClientRect();
    return {x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height}; };
  const banner = document.querySelector('header.verdict');
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const text = []; while (walker.nextNode()) text.push(walker.currentNode.nodeValue);
  return {
    banner: {box: box(banner), text: banner.innerText, background: getComputedStyle(banner).backgroundColor,
             border: getComputedStyle(banner).borderTopColor},
    pictures: [...document.querySelectorAll('svg.gpu')].map((svg) => ({
      box: box(svg), shown: svg.checkVisibility(), label: svg.getAttribute('aria-label'),
      node: svg.closest('details') ? svg.closest('details').id : null,
      instances: svg.querySelectorAll('g.gi').length})),
    marks: [...document.querySelectorAll('.mark')].filter((m) => m.checkVisibility()).map((m) => ({
      box: box(m), text: m.textContent, background: getComputedStyle(m).backgroundColor})),
    open: [...document.querySelectorAll('details.node[open]')].map((d) => d.id),
    text: text.join(''),
    width: document.documentElement.scrollWidth, viewport: innerWidth};
})()"""


def _bundle(tester: pytest.Pytester, name: str, cluster: str, *args: str) -> Path:
    result = tester.runpytest(f"--mig-cluster={cluster}", f"--mig-report={name}", "-p", "no:cacheprovider", *args)
    assert result.ret in (0, 1), result.stdout.str()[-3000:]
    return tester.path / name / "report.html"


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def _near(p: tuple[int, int, int], q: tuple[int, int, int], tolerance: int = 6) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(p, q, strict=True))


def _css_rgb(value: str) -> tuple[int, int, int]:
    r, g, b = (int(n) for n in re.findall(r"\d+", value)[:3])
    return r, g, b


def _painted(browser: Browser, box: dict[str, float]) -> Counter[tuple[int, int, int]]:
    """How many pixels of each colour the browser painted in `box` (CSS pixels of the document)."""
    image = png.decode(browser.screenshot(box))
    # the browser rounds a fractional box (190.5 px) its own way: within a pixel
    assert abs(image.width - box["width"]) <= 1 and abs(image.height - box["height"]) <= 1, (image, box)
    return Counter(image.pixels())


def _share(colours: Counter[tuple[int, int, int]], *wanted: tuple[int, int, int]) -> float:
    """The part of the pixels whose colour is (nearly) one of `wanted`."""
    near = sum(n for colour, n in colours.items() if any(_near(colour, w) for w in wanted))
    return near / max(1, colours.total())


def _fonts_have(chars: list[str]) -> list[str]:
    """Of `chars`, those no installed font covers (fontconfig's view; [] where fc-list is missing)."""
    if not shutil.which("fc-list"):
        return []
    return [c for c in chars
            if not subprocess.run(["fc-list", f":charset={ord(c):x}", "family"], capture_output=True, text=True,
                                  check=False).stdout.strip()]


def _review(browser: Browser, page: Path, verdict: str, shot: Path) -> dict[str, Any]:
    """Everything a reviewer sees on `page`, checked; returns what the page showed."""
    html = page.read_text(encoding="utf-8")
    assert not re.search(r"https?://|\bsrc=|url\(|@import", html), "report.html refers to something outside itself"
    browser.open(page.as_uri())
    seen: dict[str, Any] = browser.evaluate(SEEN)

    banner = seen["banner"]
    assert banner["text"].split("\n")[0] == "MIG conformance report"
    assert re.search(rf"^{verdict} \u2014 \d+ passed, \d+ failed, \d+ skipped, \d+ errors$", banner["text"], re.M), \
        banner["text"]
    assert (banner["background"], banner["border"]) == BANNER[verdict]
    colours = _painted(browser, banner["box"])
    background, border = _css_rgb(BANNER[verdict][0]), _css_rgb(BANNER[verdict][1])
    assert _share(colours, background) > 0.5, "the banner's colour is not on screen"
    assert _share(colours, border) > 0.01, "the banner's border or mark is not on screen"

    as_loaded = [p for p in seen["pictures"] if p["shown"]]  # pictures of open sections (failed nodes)
    assert all(p["box"]["width"] > 0 and p["box"]["height"] > 0 for p in as_loaded), as_loaded

    browser.evaluate("document.querySelectorAll('details').forEach((d) => { d.open = true; }); 0")
    shown: dict[str, Any] = browser.evaluate(SEEN)
    pictures = shown["pictures"]
    assert pictures and all(p["shown"] for p in pictures)
    for p in pictures:
        box = p["box"]
        assert box["width"] >= 200 and box["height"] >= 60, p
        assert box["x"] >= 0 and box["x"] + box["width"] <= shown["viewport"], f"picture cut off: {p}"
    palette = {_rgb(c) for c in PALETTE}
    drawn = [p for p in pictures if p["instances"]]
    for p in drawn[:: max(1, len(drawn) // 8)]:  # a spread of them: decoding a screenshot takes time
        colours = _painted(browser, p["box"])
        assert _share(colours, *palette) > 0.05, f"{p['label']} of {p['node']}: its GPU instances are not on screen"
        assert _share(colours, _rgb(EMPTY_FILL)) > 0, f"{p['label']} of {p['node']}: no slot drawn"

    for mark in shown["marks"]:
        assert mark["box"]["width"] > 5 and mark["box"]["height"] > 5 and mark["text"] == "", mark
        assert mark["background"] not in ("rgba(0, 0, 0, 0)", "transparent"), mark

    assert undrawable(shown["text"]) == [], "characters the default fonts may lack"
    assert _fonts_have(sorted({c for c in shown["text"] if ord(c) > 0x7E})) == [], "no installed font has them"
    assert shown["width"] <= shown["viewport"], "the page is wider than the window"
    assert browser.requests() == [page.as_uri()], "the page asked for more than itself"
    # the saved picture, for a human: the top of a page longer than a browser paints at once (16,384 px in Chromium;
    # the default fleet's page with every section open is longer)
    height = browser.evaluate("document.documentElement.scrollHeight")
    shot.write_bytes(browser.screenshot({"x": 0, "y": 0, "width": shown["viewport"], "height": min(height, 16000)}))
    return seen


@pytest.mark.slow  # two runs of the suites and a browser
def test_reports_render_in_a_real_browser(tester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory) -> None:
    binary = chromium()
    passed = _bundle(tester, "passed", "sim")  # README's first command: every node type of the default fleet
    tester.makepyfile(test_wrong=WRONG_EXPECTATION)
    failed = _bundle(tester, "failed", "sim:p5.48xlarge,p4d.24xlarge", str(suites_dir()), "test_wrong.py")
    out = tester.path
    with Browser(binary, tmp_path_factory.mktemp("chromium")) as browser:
        good = _review(browser, passed, "Passed", out / "report-passed.png")
        assert good["open"] == []  # nothing to look at first: every node section closed
        bad = _review(browser, failed, "Failed", out / "report-failed.png")
    # the failed node's section is open as loaded, and shows what the failing test asked for
    assert bad["open"] == ["node-sim-p5-48xlarge-0"]
    assert any(p["shown"] and p["node"] == "node-sim-p5-48xlarge-0" and p["instances"] for p in bad["pictures"])
    assert "Failed" in bad["text"] and "one_slice_more_than_the_gpus_have" in bad["text"]


@pytest.mark.parametrize("ci", ["true", "1"])
def test_without_chromium_the_browser_test_fails_under_ci(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("MIG_CHROMIUM", raising=False)
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match=r"CI: no Chromium to render report.html in \(Debian: apt-get"):
        chromium()


def test_without_chromium_the_browser_test_skips_saying_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("MIG_CHROMIUM", raising=False)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"apt-get install chromium, as scripts/setup does"):
        chromium()
    monkeypatch.setenv("MIG_CHROMIUM", "/opt/chrome/chrome")
    assert chromium() == "/opt/chrome/chrome"
