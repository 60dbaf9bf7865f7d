"""axe-core, from npm, run in the browser on a page: any serious or critical violation fails the test; and the
page must not scroll sideways. .ci/run installs axe-core (npm install --prefix .axe axe-core@<pinned>)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.settings import ROOT

AXE_JS = Path(os.environ.get("OWNSTORY_AXE_JS") or ROOT / ".axe" / "node_modules" / "axe-core" / "axe.min.js")
BLOCKING = {"serious", "critical"}
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


def require_axe() -> None:
    if AXE_JS.exists():
        return
    if os.environ.get("CI"):
        pytest.fail(f"axe-core is not installed at {AXE_JS}; .ci/run should have installed it with npm")
    pytest.skip(f"axe-core is not installed ({AXE_JS} is missing): npm install --prefix .axe axe-core@4.10.2; "
                "CI installs it and runs this")


def violations(page) -> list[str]:
    """axe's serious and critical violations on the page as it stands, one line each."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE_JS))
    found = page.evaluate("""async () => {
        // Off by default in axe (experimental), on here: a link's name must hold the words it shows.
        const result = await axe.run(document, {resultTypes: ["violations"],
                                                rules: {"label-content-name-mismatch": {enabled: true}}});
        return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                            nodes: v.nodes.slice(0, 3).map(n => n.target.join(" "))}));
    }""")
    return [f"{v['impact']}: {v['id']} ({v['help']}) at {', '.join(v['nodes'])}"
            for v in found if v["impact"] in BLOCKING]


def check(page, name: str) -> None:
    """No serious or critical axe violation, no empty table header, and no sideways scrolling: the page is as
    wide as the window. Once the page has loaded: a click only starts the way to the next page, and its width
    and colours, unstyled, are not what anyone sees."""
    page.wait_for_load_state("load")
    width = page.viewport_size["width"]
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    problems = violations(page)
    # axe rates an empty table header as minor; WCAG 2.2 AA here wants none.
    empty = page.evaluate("[...document.querySelectorAll('th')].filter(th => !th.textContent.trim()).length")
    if empty:
        problems.append(f"{empty} empty table header cell(s)")
    if scroll_width != width:
        wide = page.evaluate("""(width) => [...document.querySelectorAll("body *")]
            .filter(e => e.getBoundingClientRect().right > width + 1 && !e.closest(".table-scroll *"))
            .slice(-3).map(e => e.tagName.toLowerCase() + (e.className ? "." + e.className : ""))""", width)
        problems.append(f"the page is {scroll_width}px wide in a {width}px window: it scrolls sideways "
                        f"(the innermost too wide: {', '.join(wide)})")
    assert not problems, f"{name} at {width}px:\n" + "\n".join(problems)
