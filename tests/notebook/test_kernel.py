"""%%remote in a real ipykernel, driven through jupyter_client: what a notebook frontend gets.

One kernel serves the module (the ``kernel`` fixture closes its tunnels after each test).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from nbhelpers import Execution, Kernel, start_kernel, stop_kernel

from fixtures.pythons import RemotePythons
from fixtures.system import process_alive, wait_until

HOSTS = (
    "from chopsticks_nb import Group, Local\ngroup = Group([Local(f'h{i}') for i in range(4)])\n"
)
#: Makes the tests' remote functions importable in the kernel (and so on its hosts).
FUNCS = (
    f"import sys\nsys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})\n"
    "import output_funcs\n"
)
#: A remote cell that runs long enough for its live view to show (after about a second).
SLOW = (
    "%%remote group\nimport sys, time\n"
    "for i in range(4):\n"
    "    print(f'<b>step {i}</b>', file=sys.stderr)\n"
    "    time.sleep(0.5)\n"
    "'done'"
)


def displays(run: Execution) -> list[tuple[str, str, dict]]:
    """(message type, display id, data) of every display and display update, in order."""
    return [
        (m["msg_type"], m["content"]["transient"]["display_id"], m["content"]["data"])
        for m in run.of_type("display_data", "update_display_data")
        if "display_id" in m["content"].get("transient", {})
    ]


def test_remote_cell_runs_on_every_host_and_its_result_is_the_table(kernel: Kernel) -> None:
    kernel.execute(HOSTS + "BASE = 100\ndef plus(x):\n    return BASE + x")
    first = kernel.execute("%%remote group -o res\nimport os\npid = os.getpid()\nplus(1), pid")
    html = first.result_html
    for host in ("h0", "h1", "h2", "h3"):
        assert f"<code>{host}</code>" in html
    assert "(101, " in html and "4 hosts: 4 ok" in html
    assert first.data("text/plain", "execute_result")[-1].startswith("GroupResult(")
    # Over in well under a second: no live view was shown, nor any widget made.
    assert displays(first) == [] and not first.of_type("comm_open")
    # A later cell sees the same per-host namespaces; -o stored the result.
    second = kernel.execute("%%remote group -q\npid")
    check = kernel.execute("{h: v[1] for h, v in res.items()} == dict(_)")
    assert check.data("text/plain", "execute_result") == ["True"], second.messages


def test_a_long_cell_shows_a_live_grid_then_its_transcript(kernel: Kernel) -> None:
    kernel.execute(HOSTS)
    run = kernel.execute(SLOW)
    shown = displays(run)
    result_at = next(i for i, m in enumerate(run.messages) if m["msg_type"] == "execute_result")
    controls, grid = shown[0][1], shown[1][1]
    assert [kind for kind, _, _ in shown[:2]] == ["display_data", "display_data"]
    assert 'type="search"' in shown[0][2]["text/html"]  # the filter box, drawn once
    live = [data for kind, shown_id, data in shown[1:-1] if shown_id == grid]
    # The counts from the first drawing on, then a row per host with its escaped stderr.
    assert re.match(r"exec on h\[0-3\]: 4 running · 0 done", live[0]["text/plain"])
    page = next(data["text/html"] for data in live if "step 1" in data["text/html"])
    assert "&lt;b&gt;step 1&lt;/b&gt;" in page and "<b>step" not in page
    assert re.search(r'data-find="h\[0-3\] running"', page)  # equal output: one row
    updates = [i for i, m in enumerate(run.messages) if m["msg_type"] == "update_display_data"]
    assert updates[0] < result_at
    # Redrawn a few times a second at most, and no widget (comm) at all.
    assert len(live) <= 10 * run.seconds + 2 and not run.of_type("comm_open", "comm_msg")
    # Settled: the controls emptied, the grid replaced by the transcript, stderr flagged.
    final = {shown_id: data for _, shown_id, data in shown}
    assert final[controls] == {"text/plain": ""}
    transcript = final[grid]["text/html"]
    assert "<code>h[0-3]</code> · 4 hosts · 4 lines" in transcript
    assert "4 on stderr" in transcript and "&lt;b&gt;step 3&lt;/b&gt;" in transcript
    assert "[h[0-3]] <b>step 3</b>" in final[grid]["text/plain"]


def test_live_output_stays_under_its_cell_while_later_cells_run(kernel: Kernel) -> None:
    """Work left running in a thread: its output goes to the first cell's view (display
    updates), never into the cell that happens to run when it arrives."""
    kernel.execute(HOSTS + "import threading\nfrom chopsticks_nb.notebook import LiveView")
    started = kernel.execute(
        "view = LiveView(group).start()\n"
        "def work():\n"
        "    try:\n"
        "        group.exec('import time\\nfor i in range(4):\\n    print(\"bg\", i)\\n'\n"
        "                   '    time.sleep(0.3)', output=view.output, progress=view.progress,\n"
        "                   quiet=True)\n"
        "    finally:\n"
        "        view.finish()\n"
        "worker = threading.Thread(target=work)\n"
        "worker.start()"
    )
    grid = displays(started)[1][1]
    later = kernel.execute("import time\ntime.sleep(2)\n'another cell'", drain=0.5)
    kernel.execute("worker.join(30)")
    assert "bg" not in later.stream
    assert not [
        m
        for m in later.of_type("display_data", "execute_result")
        if "bg" in m["content"]["data"].get("text/plain", "")
    ]
    final = [data for _, shown_id, data in displays(later) if shown_id == grid]
    assert final and "bg 3" in final[-1]["text/plain"]


def test_a_flood_from_tunnel_call_is_a_few_messages_capped(kernel: Kernel) -> None:
    """100,000 lines from a plain tunnel.call: a few stream messages, the first lines, a count
    and the last lines (it was a message per line)."""
    kernel.execute(FUNCS + "from chopsticks_nb import Local\nt = Local('t')")
    run = kernel.execute("t.call(output_funcs.lines, 100_000)")
    assert run.data("text/plain", "execute_result") == ["100000"]
    streams = run.of_type("stream")
    assert len(streams) <= 2 + 5 * run.seconds, (len(streams), run.seconds)
    text = run.stream
    assert text.startswith("[t] line 0\n[t] line 1\n")
    assert "[t] line 499\n[t] ... 99,500 more lines hidden; the last 20:\n[t] line 99980\n" in text
    assert text.endswith("[t] line 99999\n") and text.count("\n") == 500 + 1 + 20
    # The next cell starts afresh: its lines are shown again.
    again = kernel.execute("t.call(output_funcs.lines, 2)")
    assert again.stream == "[t] line 0\n[t] line 1\n"


def test_a_flood_from_a_group_call_is_a_grid_redrawn_a_few_times_a_second(kernel: Kernel) -> None:
    kernel.execute(HOSTS + FUNCS + "group.connect()")
    run = kernel.execute("group.call(output_funcs.lines, 200_000)")
    updates = run.of_type("display_data", "update_display_data")
    assert len(updates) <= 2 + 10 * run.seconds
    sent = sum(len(json.dumps(m["content"])) for m in run.messages)
    assert sent < 300_000 + 100_000 * run.seconds  # bounded bytes, not 4 x 200,000 lines
    transcript = displays(run)[-1][2]["text/plain"]
    assert "[h[0-3]] ... 199,500 more lines hidden; the last 20:" in transcript


def test_a_queue_run_shows_its_tasks(kernel: Kernel) -> None:
    kernel.execute(HOSTS + "from chopsticks_nb import Queue\nimport time")
    run = kernel.execute(
        "q = Queue()\nfor step in range(3):\n    q.call(group, time.sleep, 0.5)\nq.run()"
    )
    texts = [data["text/plain"] for _, _, data in displays(run)]
    assert any(re.match(r"queue on h\[0-3\] \(\d+ of 12 tasks done\)", t) for t in texts)


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
    deadline = time.monotonic() + 30
    while True:
        assert time.monotonic() < deadline, "the hosts never started"
        msg = kernel.client.get_iopub_msg(timeout=30)
        page = msg["content"].get("data", {}).get("text/html", "")
        if 'data-find="h[0-3] running"' in page and "sleeping" in page:
            break  # one row: every host printed the same line and still runs
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


def test_a_cell_without_a_last_expression_shows_its_summary_line(kernel: Kernel) -> None:
    kernel.execute(HOSTS)
    run = kernel.execute("%%remote group -o assigned\nx = 1")
    (text,) = run.data("text/plain", "execute_result")
    assert re.fullmatch(r"4 hosts: 4 ok in \d+ ms", text)
    assert "<table" not in run.result_html
    check = kernel.execute("type(assigned).__mro__[1].__name__, dict(assigned)")
    assert check.data("text/plain", "execute_result") == [
        "('GroupResult', {'h0': None, 'h1': None, 'h2': None, 'h3': None})"
    ]


def test_a_syntax_error_is_one_short_error_pointing_at_the_cells_line(kernel: Kernel) -> None:
    kernel.execute(HOSTS)
    run = kernel.execute("%%remote group\nx = 1\ny = (\n", check=False)
    number = run.reply["execution_count"]
    assert run.error["traceback"] == [
        f"  Cell In[{number}], line 3",
        "    y = (",
        "        ^",
        "SyntaxError: '(' was never closed",
    ]
    assert not run.of_type("display_data")  # nothing ran


def test_remote_tracebacks_name_the_cell_and_the_editors_line(kernel: Kernel) -> None:
    kernel.execute(HOSTS)
    run = kernel.execute("%%remote group --no-raise\ndef f():\n    1 / 0\nf()")
    number = run.reply["execution_count"]
    page = run.result_html
    assert f"File &quot;&lt;remote-cell-{number}&gt;&quot;, line 4, in &lt;module&gt;" in page
    assert f"File &quot;&lt;remote-cell-{number}&gt;&quot;, line 3, in f" in page


def test_a_reconnected_host_is_named_once(kernel: Kernel) -> None:
    kernel.execute(HOSTS + "import os")
    kernel.execute("%%remote group\nvalue = 1")
    ended = kernel.execute(
        "from chopsticks_nb import ConnectionLost\ntry:\n"
        "    group['h2'].call(os._exit, 3)\nexcept ConnectionLost:\n"
        "    print('lost')"
    )
    assert ended.stream == "lost\n"
    run = kernel.execute("%%remote group --no-raise\nvalue", check=False)
    notes = [
        m["content"]["text"] for m in run.of_type("stream") if m["content"]["name"] == "stderr"
    ]
    assert len(notes) == 1 and notes[0].startswith("Note: h2 reconnected since the last %%remote")
    assert "NameError: name &#x27;value&#x27; is not defined" in run.result_html
    again = kernel.execute("%%remote group --no-raise\n1")
    assert again.stream == ""


def test_interrupting_a_tunnel_call_is_one_clean_line(kernel: Kernel) -> None:
    kernel.execute(HOSTS + "import time\nh1 = group['h1']\nh1.connect()")
    msg_id = kernel.client.execute("h1.call(time.sleep, 60)")
    time.sleep(1.0)
    kernel.manager.interrupt_kernel()
    run = kernel.collect(msg_id, timeout=30)
    assert run.error["traceback"] == [
        "KeyboardInterrupt: the call on h1 was interrupted and cancelled there"
    ]
    assert kernel.execute("h1.call(abs, -2)").data("text/plain", "execute_result") == ["2"]


def test_a_lone_surrogate_in_a_remote_error_still_reaches_the_frontend(kernel: Kernel) -> None:
    """Jupyter drops a message it cannot encode as UTF-8: the error text must be encodable."""
    kernel.execute(HOSTS + "h0 = group['h0']")
    run = kernel.execute("h0.exec('raise ValueError(\"bad byte: \\\\udc80\")')", check=False)
    assert run.reply["status"] == "error"
    assert "ValueError: bad byte: \\udc80" in "\n".join(run.error["traceback"])
    cell = kernel.execute("%%remote group --no-raise\nraise OSError('\\udcff name')")
    # Shown escaped (the hosts' identical errors are grouped: the count depends on the layout).
    assert "OSError: \\udcff name" in cell.result_html
    assert "\udcff" not in cell.result_html
