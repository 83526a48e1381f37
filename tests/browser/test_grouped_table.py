"""A grouped result in JupyterLab: outliers first, every host one click away (no script)."""

from __future__ import annotations

from labpage import Notebook

CELLS = [
    "from chopsticks_nb import Group, Local\n"
    "group = Group([Local(f'web{i:02d}', output=lambda *_: None) for i in range(1, 7)])\n"
    "for tunnel in group:\n"
    "    tunnel.exec(f'HOST = {tunnel.host!r}')",
    "result = group.exec(\"'<b>odd</b>' if HOST == 'web04' else 'ok'\")\nresult",
    "group.close()",
]


def test_a_grouped_table_expands_to_every_host_on_click(notebook: Notebook) -> None:
    notebook.open("groups.ipynb", CELLS)
    notebook.run(0)
    output = notebook.run(1)
    result = output.locator(".chopsticks-nb-result")
    result.wait_for()
    groups = result.locator(":scope > table > tbody > tr")
    assert groups.count() == 2
    assert groups.nth(0).locator("td").first.inner_text() == "web04"
    assert "'<b>odd</b>'" in groups.nth(0).inner_text()  # as text: escaped, not bold
    assert groups.nth(1).locator("td").first.inner_text() == "5 hosts web[01-03,05-06]"
    assert result.locator("b").count() == 0

    every = result.locator("details.chopsticks-nb-every-host")
    rows = every.locator("tbody tr")
    assert every.get_attribute("open") is None and not rows.first.is_visible()
    every.locator("summary").click()
    rows.first.wait_for(state="visible")
    assert every.get_attribute("open") is not None
    names = [rows.nth(i).locator("td").first.inner_text() for i in range(rows.count())]
    assert names == [f"web{i:02d}" for i in range(1, 7)]
    assert "'<b>odd</b>'" in rows.nth(3).inner_text()
    notebook.run(2)
