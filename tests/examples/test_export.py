"""The example notebooks as people share them, read in Chromium with no kernel and no network:
exported by nbconvert to HTML (light and dark themes) and to Markdown, and as GitHub shows
them (every ``style`` attribute and ``<style>`` element removed).

Pages are compared by structure, not pixels: what each result table, transcript and host
picker shows (their text, cell by cell) is read from the DOM of each page and must be the
same in every form; computed styles say whether values and transcripts are monospace and
readable. A screenshot of every page is kept under ``$CHOPSTICKS_NB_ARTIFACTS/export``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mistune
import nbformat
import pytest
from example_runs import EXAMPLES, NOTEBOOKS, execute, saved_models
from nbconvert import HTMLExporter, MarkdownExporter

from fixtures.browser import CONTRAST, STEP_MS, connect, save_screenshot

#: What a page shows of our views, read from its DOM: every result table (head, rows of cell
#: texts), every transcript's section titles, every host picker's static rendering, and what
#: is left of live views (nothing, once their cells ended). Whitespace is folded.
STRUCTURE = """
() => {
  const text = (el) => el ? el.innerText.replace(/\\s+/g, ' ').trim() : null;
  const shown = (el) => !!el && el.getClientRects().length > 0
    && getComputedStyle(el).visibility !== 'hidden';
  const all = (selector, root) => [...(root || document).querySelectorAll(selector)];
  return {
    results: all('.chopsticks-nb-result').map(result => {
      const table = result.querySelector(':scope > table');
      return {
        shown: shown(table),
        head: all(':scope > thead th', table).map(text),
        rows: all(':scope > tbody > tr', table).map(tr => ({
          shown: shown(tr), cells: [...tr.children].map(text),
        })),
        summary: text(result.querySelector(':scope > small')),
      };
    }),
    transcripts: all('.chopsticks-nb-output').map(output => ({
      shown: shown(output), titles: all('summary', output).map(text),
    })),
    pickers: all('.chopsticks-nb-picker-static').map(picker => ({
      shown: shown(picker), text: text(picker),
    })),
    leftovers: all('.chopsticks-nb-live, .cnb-controls, .chopsticks-nb-picker').length,
  };
}
"""
#: Each ``pre`` of our views: its font (monospace if "iiii" and "WWWW" are as wide) and its
#: background (transparent, else it is a box of another colour in a striped row).
FONTS = """
(selector) => {
  const context = document.createElement('canvas').getContext('2d');
  return [...document.querySelectorAll(selector)].map(el => {
    const style = getComputedStyle(el);
    context.font = `${style.fontSize} ${style.fontFamily}`;
    const narrow = context.measureText('iiiiiiiiii').width;
    const wide = context.measureText('WWWWWWWWWW').width;
    return {
      family: style.fontFamily,
      monospace: Math.abs(narrow - wide) < 0.01 * wide,
      background: style.backgroundColor,
      where: el.closest('[class^="chopsticks-nb-"]').className,
    };
  });
}
"""
VIEW_PRE = (
    ".chopsticks-nb-result pre, .chopsticks-nb-output pre, .chopsticks-nb-printed pre, "
    ".chopsticks-nb-diff pre"
)
#: Text over what lies beneath it, where it is: a value in a striped row, remote stderr in a
#: transcript, a failed host's status.
READABLE = {
    ".chopsticks-nb-result > table > tbody > tr:nth-child(even) td pre": 4.5,
    ".chopsticks-nb-output pre span": 4.5,
    ".chopsticks-nb-result > table > tbody > tr td:nth-child(2) span": 4.5,
    # A picker's check: its text, and its mark (a glyph: 3 is enough).
    ".chopsticks-nb-picker-static li > span": 4.5,
    ".chopsticks-nb-picker-static li > span > span": 3.0,
}
#: What each notebook has to measure (the others have none of it, or some).
MEASURED = {
    "quickstart": set(list(READABLE)[:3]),
    "ssh_groups": set(list(READABLE)[3:]),
}
STATUSES = {"ok", "error", "unreachable", "lost", "timeout", "interrupted", "cancelled", "failed"}


@pytest.fixture(scope="module")
def offline_page(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A page of the session's Chromium with the network off (a reader without network; the
    exports' scripts from CDNs fail at once)."""
    blank = tmp_path_factory.mktemp("pages") / "blank.html"
    blank.write_text("<!DOCTYPE html><title>blank</title>")
    with connect(chromium) as browser:
        context = browser.new_context(offline=True, viewport={"width": 1100, "height": 900})
        page = context.new_page()
        page.set_default_timeout(STEP_MS)
        # The renderer process of file:// pages starts here, not in a test (the leak check).
        page.goto(blank.as_uri())
        yield page


def _open(page: Any, html: str, path: Path) -> dict[str, Any]:
    path.write_text(html, encoding="utf-8")
    page.goto(path.as_uri(), wait_until="load")
    structure: dict[str, Any] = page.evaluate(STRUCTURE)
    return structure


def without_styles(html: str) -> str:
    """``html`` as GitHub shows a notebook's outputs: no ``style`` attribute, no ``<style>``
    element (and no script, no stylesheet link)."""
    html = re.sub(r"<(style|script)\b[^>]*>.*?</\1\s*>", "", html, flags=re.S | re.I)
    html = re.sub(r"<link\b[^>]*>", "", html, flags=re.I)
    return re.sub(r"\sstyle\s*=\s*(\"[^\"]*\"|'[^']*')", "", html, flags=re.I)


def _saved(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook as a frontend saves it and a reader opens it."""
    return nbformat.reads(nbformat.writes(nb), as_version=4)


def _check_structure(name: str, structure: dict[str, Any], nb: nbformat.NotebookNode) -> None:
    """What every form of the notebook must show: its results (hosts, statuses, values), its
    transcripts and pickers, and no leftover of a live view."""
    assert structure["leftovers"] == 0, name
    results = structure["results"]
    assert results, f"{name}: no result table"
    for result in results:
        assert result["shown"] and result["head"][:3] in (
            ["host", "status", "value"],
            ["hosts", "status", "value"],
        ), (name, result)
        for row in result["rows"]:
            hosts, status, value = row["cells"][:3]
            assert row["shown"] and hosts and value, (name, row)
            assert status in STATUSES, (name, row)
    assert all(t["shown"] and t["titles"] for t in structure["transcripts"]), name
    pickers = [out for out in _outputs(nb) if "chopsticks-nb-picker-static" in out]
    if any("HostPicker(" in cell.source or "HostPicker.from_" in cell.source for cell in nb.cells):
        assert pickers, f"{name}: a picker was shown, and nothing of it is static"
    assert len(structure["pickers"]) == len(pickers), name
    for picker in structure["pickers"]:
        assert picker["shown"], (name, picker)
        assert re.match(r"HostPicker: \d+ of \d+ hosts selected", picker["text"]), picker


def _outputs(nb: nbformat.NotebookNode) -> list[str]:
    return [
        out.get("data", {}).get("text/html", "")
        for cell in nb.cells
        for out in cell.get("outputs", [])
    ]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_exported_notebooks_read_the_same_in_every_form(
    notebook: Path,
    python3_kernel: str,
    notebook_env: None,
    offline_page: Any,
    tmp_path: Path,
) -> None:
    nb = _saved(execute(notebook, python3_kernel))
    name = notebook.stem
    page = offline_page

    # nbconvert's HTML, light theme: every view shown, as the notebook holds it.
    html, _ = HTMLExporter().from_notebook_node(nb)
    light = _open(page, html, tmp_path / f"{name}.html")
    save_screenshot(page, "export", f"{name}-light")
    _check_structure(name, light, nb)
    fonts = page.evaluate(FONTS, VIEW_PRE)
    assert fonts, name
    for pre in fonts:  # values, tracebacks, transcripts: monospace, no box of their own
        assert pre["monospace"], pre
        assert pre["background"] == "rgba(0, 0, 0, 0)", pre
    readable = page.evaluate(CONTRAST, list(READABLE))
    measured = {selector for selector, ratio in readable.items() if ratio is not None}
    assert measured >= MEASURED.get(name, set()), readable

    # The dark theme: the same structure, as readable.
    html_dark, _ = HTMLExporter(theme="dark").from_notebook_node(nb)
    dark = _open(page, html_dark, tmp_path / f"{name}-dark.html")
    save_screenshot(page, "export", f"{name}-dark")
    assert dark == light
    for theme, ratios in (("light", readable), ("dark", page.evaluate(CONTRAST, list(READABLE)))):
        for selector, ratio in ratios.items():
            assert ratio is None or ratio >= READABLE[selector], (theme, selector, ratio)

    # As GitHub shows it: no styles at all. Every table, transcript and picker still reads.
    bare = _open(page, without_styles(html), tmp_path / f"{name}-bare.html")
    save_screenshot(page, "export", f"{name}-without-styles")
    assert bare == light

    # Markdown (the outputs' HTML kept in it), rendered and stripped as GitHub does.
    markdown, _ = MarkdownExporter().from_notebook_node(nb)
    assert "widget-view+json" not in markdown and "widget-state+json" not in markdown
    rendered = mistune.create_markdown(escape=False, plugins=["table"])(markdown)
    page_md = f"<!DOCTYPE html><meta charset='utf-8'><body>{rendered}</body>"
    from_markdown = _open(page, without_styles(page_md), tmp_path / f"{name}-md.html")
    save_screenshot(page, "export", f"{name}-markdown")
    assert from_markdown == light


def test_an_export_carries_no_widget_state_for_views_that_ended(
    python3_kernel: str, offline_page: Any, tmp_path: Path
) -> None:
    """The quickstart's live views ran and ended: its export holds no widget state and no
    script of a widget manager, only static output."""
    nb = _saved(execute(EXAMPLES / "quickstart.ipynb", python3_kernel))
    assert saved_models(nb) == {}
    html, _ = HTMLExporter().from_notebook_node(nb)
    assert "widget-state+json" not in html and "widget-view+json" not in html
    structure = _open(offline_page, html, tmp_path / "quickstart.html")
    assert len(structure["transcripts"]) == 1 and structure["leftovers"] == 0
