"""The example notebooks executed once per test run (nbclient, a real kernel), and what their
saved form holds: outputs by cell, widget models, size."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

_EXECUTED: dict[Path, nbformat.NotebookNode] = {}


def execute(notebook: Path, kernel_name: str) -> nbformat.NotebookNode:
    """The notebook executed (once per run: tests look at different parts of it). Widget state
    is saved in its metadata, as nbclient does by default."""
    if notebook in _EXECUTED:
        return _EXECUTED[notebook]
    nb = nbformat.read(notebook, as_version=4)
    run(nb, kernel_name, path=EXAMPLES)  # raises CellExecutionError on any error in a cell
    _EXECUTED[notebook] = nb
    return nb


def run(nb: nbformat.NotebookNode, kernel_name: str, *, path: Path | None = None) -> None:
    """Execute ``nb`` in place (nbclient), in a thread of its own.

    asyncio.run closes its event loop (the sync execute() would keep one open for the process's
    lifetime, jupyter_core's run_sync, which the leak check rightly reports); and in a thread
    of its own it runs while Playwright's synchronous API holds this thread's event loop.
    """
    resources = {"metadata": {"path": str(path)}} if path is not None else {}
    client = NotebookClient(nb, kernel_name=kernel_name, timeout=90, resources=resources)
    failed: list[BaseException] = []

    def execute() -> None:
        try:
            asyncio.run(client.async_execute())
        except BaseException as exc:
            failed.append(exc)

    worker = threading.Thread(target=execute, name="nbclient")
    worker.start()
    worker.join()
    if failed:
        raise failed[0]


def outputs_of(nb: nbformat.NotebookNode, start: str) -> list[dict[str, Any]]:
    """The outputs of the first cell whose source starts with ``start``."""
    cell = next(cell for cell in nb.cells if cell.source.startswith(start))
    return list(cell.outputs)


def saved_models(nb: nbformat.NotebookNode) -> dict[str, Any]:
    """The widget models whose state the notebook saved: model id -> state."""
    saved = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {})
    return dict(saved.get("state", {}))


def shown_models(nb: nbformat.NotebookNode) -> set[str]:
    """The saved models an output shows: the widget views' models and every model they
    refer to (children, layouts, styles)."""
    state = saved_models(nb)
    todo = [
        out["data"][WIDGET_VIEW]["model_id"]
        for cell in nb.cells
        for out in cell.get("outputs", [])
        if WIDGET_VIEW in out.get("data", {})
    ]
    shown: set[str] = set()
    while todo:
        model = todo.pop()
        if model in shown or model not in state:
            continue
        shown.add(model)
        todo += re.findall(r"IPY_MODEL_([0-9a-f]+)", json.dumps(state[model]))
    return shown


def saved_size(nb: nbformat.NotebookNode) -> int:
    """Bytes of the notebook as a frontend saves it."""
    return len(nbformat.writes(nb).encode())
