"""%%remote in a real ipykernel, driven through jupyter_client: what a notebook frontend gets.

One kernel serves the module (the ``kernel`` fixture closes its tunnels after each test).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from nbhelpers import Kernel, start_kernel, stop_kernel

from fixtures.pythons import RemotePythons
from fixtures.system import process_alive, wait_until

HOSTS = (
    "from chopsticks_nb import Group, Local\ngroup = Group([Local(f'h{i}') for i in range(4)])\n"
)
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def comm_outputs(messages: list[dict]) -> list[tuple[int, str, str]]:
    """(message index, stream name, text) of every Output widget update, in order."""
    found = []
    for index, msg in enumerate(messages):
        if msg["msg_type"] != "comm_msg":
            continue
        for entry in msg["content"]["data"].get("state", {}).get("outputs", []):
            if entry.get("output_type") == "stream":
                found.append((index, entry["name"], entry["text"]))
    return found


def test_remote_cell_runs_on_every_host_and_its_result_is_the_table(kernel: Kernel) -> None:
    kernel.execute(HOSTS + "BASE = 100\ndef plus(x):\n    return BASE + x")
    first = kernel.execute("%%remote group -o res\nimport os\npid = os.getpid()\nplus(1), pid")
    html = first.result_html
    for host in ("h0", "h1", "h2", "h3"):
        assert f"<code>{host}</code>" in html
    assert "(101, " in html and "4 hosts: 4 ok" in html
    assert first.data("text/plain", "execute_result")[-1].startswith("GroupResult(")
    # The live view (a widget) was shown under the cell, then replaced by static output.
    shown = first.of_type("display_data")[0]["content"]
    assert WIDGET_VIEW in shown["data"]
    display_id = shown["transient"]["display_id"]
    updates = first.of_type("update_display_data")
    assert updates and updates[-1]["content"]["transient"]["display_id"] == display_id
    assert WIDGET_VIEW not in updates[-1]["content"]["data"]
    # A later cell sees the same per-host namespaces; -o stored the result.
    second = kernel.execute("%%remote group -q\npid")
    check = kernel.execute("{h: v[1] for h, v in res.items()} == dict(_)")
    assert check.data("text/plain", "execute_result") == ["True"], second.messages


def test_live_stderr_arrives_as_comm_messages_while_the_cell_runs(kernel: Kernel) -> None:
    kernel.execute(HOSTS)
    cell = (
        "%%remote group\nimport sys, time\n"
        "for i in range(3):\n"
        "    print(f'<b>step {i}</b>', file=sys.stderr)\n"
        "    time.sleep(0.4)\n"
        "'done'"
    )
    run = kernel.execute(cell)
    updates = comm_outputs(run.messages)
    result_at = next(i for i, m in enumerate(run.messages) if m["msg_type"] == "execute_result")
    stderr = [(i, text) for i, name, text in updates if name == "stderr"]
    assert stderr, [m["msg_type"] for m in run.messages]
    # The first line was shown long before the end: in a message well before the result.
    first_at = next(i for i, text in stderr if "<b>step 0</b>" in text)
    last_at = max(i for i, text in stderr if "<b>step 2</b>" in text)
    assert first_at < last_at < result_at
    # Batched: far fewer updates than 4 hosts x 3 lines... per host at most one per line.
    assert len(updates) <= 12
    # Settled into an escaped static transcript, every host's lines in it.
    final = run.data("text/html", "update_display_data")[-1]
    assert final.count("&lt;b&gt;step 2&lt;/b&gt;") == 4 and "<b>step" not in final


def test_live_output_stays_under_its_cell_while_later_cells_run(kernel: Kernel) -> None:
    """Work left running in a thread: its output goes to the first cell's view (comms and
    display updates), never into the cell that happens to run when it arrives."""
    kernel.execute(HOSTS + "import threading\nfrom chopsticks_nb.notebook import LiveView")
    started = kernel.execute(
        "view = LiveView(group.hosts).start()\n"
        "def work():\n"
        "    try:\n"
        "        group.exec('import time\\nfor i in range(4):\\n    print(\"bg\", i)\\n'\n"
        "                   '    time.sleep(0.3)', output=view.output, progress=view.progress)\n"
        "    finally:\n"
        "        view.finish()\n"
        "worker = threading.Thread(target=work)\n"
        "worker.start()"
    )
    display_id = started.of_type("display_data")[0]["content"]["transient"]["display_id"]
    later = kernel.execute("import time\ntime.sleep(2)\n'another cell'", drain=0.5)
    kernel.execute("worker.join(30)")
    assert "bg" not in later.stream
    assert not [
        m
        for m in later.of_type("display_data", "execute_result")
        if "bg" in m["content"]["data"].get("text/plain", "")
    ]
    assert any("bg 3" in text for _, _, text in comm_outputs(started.messages + later.messages))
    final = [
        m
        for m in later.of_type("update_display_data")
        if m["content"]["transient"]["display_id"] == display_id
    ]
    assert final and "bg 3" in final[-1]["content"]["data"]["text/plain"]


def test_html_view_without_widgets_updates_one_display(kernel: Kernel) -> None:
    kernel.execute(HOSTS + "%config RemoteMagics.view = 'html'")
    try:
        run = kernel.execute("%%remote group\nimport time\nprint('tick')\ntime.sleep(0.5)\n1")
    finally:
        kernel.execute("%config RemoteMagics.view = 'auto'")
    assert not run.of_type("comm_open")
    updates = run.data("text/html", "update_display_data")
    assert any("tick" in page and "of 4 done" in page for page in updates[:-1]), updates
    assert "tick" in updates[-1]


def test_a_failed_host_fails_the_cell_with_a_short_error(kernel: Kernel) -> None:
    kernel.execute(HOSTS + "h2 = group['h2']")
    kernel.execute("%%remote h2 -q\nbad = True")
    run = kernel.execute("%%remote group\nif globals().get('bad'):\n    1 / 0\n'fine'", check=False)
    assert run.status == "error" and run.reply["ename"] == "GroupError"
    error = run.error
    assert error["ename"] == "GroupError"
    assert error["traceback"][0] == "GroupError: 1 of 4 hosts failed: h2"
    assert len(error["traceback"]) <= 4  # short: no local stack, no remote traceback text
    assert "h2: ZeroDivisionError: division by zero" in "\n".join(error["traceback"])
    # Every host's result was shown first, grouped (the failed host first), the remote
    # traceback collapsed in the table.
    table = run.data("text/html", "display_data")[-1]
    groups = table.split("<tbody>")[1].split("</tbody>")[0]
    assert groups.index("<code>h2</code>") < groups.index("3 hosts <code>h[0-1,3]</code>")
    assert "<details><summary>remote traceback" in groups
    assert kernel.execute("%%remote group --no-raise -q\n1 / 0").status == "ok"


def test_usage_errors_reach_the_frontend_as_errors(kernel: Kernel) -> None:
    run = kernel.execute("%%remote nothing_here\n1", check=False)
    assert run.status == "error"
    assert "UsageError: no variable 'nothing_here' in the notebook" in run.stream


def test_interrupt_cancels_remote_work_and_keeps_the_hosts(kernel: Kernel) -> None:
    kernel.execute(HOSTS)
    pids = kernel.execute("%%remote group -q\nimport os\nos.getpid()")
    msg_id = kernel.client.execute("%%remote group\nimport time\nprint('sleeping')\ntime.sleep(60)")
    # Wait until every host is asleep (its line reached the live view), then interrupt.
    seen: list[dict] = []
    deadline = time.monotonic() + 30
    while sum("sleeping" in text for _, _, text in comm_outputs(seen)) < 4:
        assert time.monotonic() < deadline, "the hosts never started"
        seen.append(kernel.client.get_iopub_msg(timeout=30))
    interrupted_at = time.perf_counter()
    kernel.manager.interrupt_kernel()
    run = kernel.collect(msg_id, timeout=30)
    took = time.perf_counter() - interrupted_at
    assert took < 2.0, f"the reply took {took:.1f} s"
    assert run.reply["status"] == "error" and run.reply["ename"] == "GroupInterrupted"
    assert run.error["traceback"] == [
        "GroupInterrupted: interrupted with 4 of 4 hosts unfinished",
        "  interrupted: h0, h1, h2, h3",
    ]
    table = run.data("text/html", "display_data")[-1]
    assert "4 hosts <code>h[0-3]</code>" in table and "4 hosts: 4 interrupted" in table
    # The same agents answer the next cell at once: the tunnels stayed up.
    again = kernel.execute("%%remote group -q\nos.getpid()")
    same = kernel.execute(f"_ == Out[{pids.reply['execution_count']}]")
    assert same.data("text/plain", "execute_result") == ["True"]
    assert again.seconds < 2.0


def test_interrupting_a_group_call_can_return_the_partial_result(kernel: Kernel) -> None:
    kernel.execute(HOSTS + "import time\ngroup.connect()")
    msg_id = kernel.client.execute(
        "partial = group.run(time.sleep, (60,), on_interrupt='return')\n"
        "sorted(e.status for _, e in partial.failures())"
    )
    time.sleep(1.0)
    kernel.manager.interrupt_kernel()
    run = kernel.collect(msg_id, timeout=30)
    assert run.reply["status"] == "ok"
    assert run.data("text/plain", "execute_result") == [str(["interrupted"] * 4)]
    assert (
        "4 hosts <code>h[0-3]</code></td><td" in kernel.execute("group.call(abs, -3)").result_html
    )
    assert kernel.execute("group.call(abs, -3)").result_html.count("<code>3</code>") == 4


def test_notebook_functions_and_classes_reach_other_remote_pythons(
    kernel: Kernel, remote_pythons: RemotePythons
) -> None:
    """The kernel runs 3.11; each host another Python: source, not bytecode, travels."""
    paths = {v: str(remote_pythons.path(v)) for v in ("3.8", "3.10", "3.12", "3.13")}
    kernel.execute(
        "from chopsticks_nb import Group, Local\n"
        f"paths = {paths!r}\n"
        "group = Group([Local('py' + v, python3=p) for v, p in paths.items()])"
    )
    kernel.execute(
        "import dataclasses, functools\n"
        "FACTOR = 3\n"
        "def triple(x):\n    return x * FACTOR\n"
        "square = lambda x: x * x\n"
        "def make_adder(n):\n    def add(x):\n        return x + n\n    return add\n"
        "add_two = make_adder(2)\n"
        "class Shape:\n    sides = 0\n"
        "    def __init__(self, name):\n        self.name = name\n"
        "    def describe(self):\n        return f'{self.name} has {self.sides} sides'\n"
        "class Square(Shape):\n    sides = 4\n"
        "    def describe(self):\n        return 'square: ' + super().describe()\n"
        "@dataclasses.dataclass\nclass Point:\n    x: int\n    y: int = 0\n"
        "class Settings:\n    retries = 5\n"
        "def everything():\n"
        "    import sys\n"
        "    p = Point(1, 2)\n"
        "    return ('%d.%d' % sys.version_info[:2], triple(2), square(3), add_two(1),\n"
        "            Square('sq').describe(), (p.x, p.y), Settings.retries)\n"
    )
    expected = (6, 9, 3, "square: sq has 4 sides", (1, 2), 5)
    by_tunnel = kernel.execute("{t.host: t.call(everything) for t in group}")
    by_group = kernel.execute("group.call(everything)")
    by_cell = kernel.execute(
        "%%remote group -q\nimport sys\n"
        "shape = Square('sq')\n"
        "('%d.%d' % sys.version_info[:2], triple(2), square(3), add_two(1), shape.describe(),\n"
        " dataclasses.astuple(Point(1, 2)), Settings.retries)"
    )
    for run in (by_tunnel, by_group, by_cell):
        number = run.reply["execution_count"]
        got = kernel.execute(
            f"{{h: v == (h[2:],) + {expected!r} for h, v in Out[{number}].items()}}"
        )
        assert got.data("text/plain", "execute_result") == [
            str({"py" + version: True for version in paths})
        ], run.data("text/plain")


def test_kernel_shutdown_leaves_no_agent_processes(kernel_env: Path) -> None:
    own = start_kernel(kernel_env)
    try:
        run = own.execute(
            "from chopsticks_nb import Group, Local\n"
            "group = Group([Local(f'h{i}') for i in range(3)])\n"
            "import json\n"
            "print(json.dumps([info['pid'] for _, info in group.connect().items()]))"
        )
        pids = json.loads(run.stream)
        assert len(pids) == 3 and all(process_alive(pid) for pid in pids)
    finally:
        stop_kernel(own)
    wait_until(
        lambda: not any(process_alive(pid) for pid in pids),
        timeout=10,
        what=f"agents {pids} to exit",
    )
