"""Slurm job steps as tunnels, and allocations, against the real two-node cluster of
``slurm_cluster`` (slurmctld, slurmd node1 and node2, munge). Jobs run as root; the steps run
Debian's /usr/bin/python3."""

from __future__ import annotations

import gc
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import remote_funcs as rf
import slurm_funcs as sf

from chopsticks_nb.errors import (
    CallCancelled,
    CallTimeout,
    ConnectError,
    ConnectionLost,
    GroupInterrupted,
    RemoteException,
)
from chopsticks_nb.group import Group
from chopsticks_nb.slurm import (
    Allocation,
    JobState,
    SlurmError,
    Srun,
    job_nodes,
    job_state,
    job_tunnels,
)
from fixtures.interrupts import sigint_after
from fixtures.slurm import SlurmCluster
from fixtures.system import wait_until
from fixtures.transports import OutputLog as Captured

PYTHON = "/usr/bin/python3"
NODES = ["node1", "node2"]


@pytest.fixture
def job(slurm_cluster: SlurmCluster) -> Iterator[str]:
    """A running two-node allocation, cancelled after the test."""
    with slurm_cluster.job(2) as job_id:
        yield job_id


@pytest.fixture
def group(job: str) -> Iterator[Group]:
    """What ``Group.from_slurm(job)`` gives: one Srun tunnel per node of the job."""
    nodes = Group(job_tunnels(job, python3=PYTHON))
    try:
        yield nodes
    finally:
        nodes.close()


def _steps_by_node(group: Group, job: str) -> set[str]:
    """Where each tunnel's step runs, checking it is a step of ``job`` on the tunnel's node."""
    places = group.call(sf.where).raise_failures()
    assert {node: place[:2] for node, place in places.items()} == {n: (n, job) for n in places}
    assert sorted(place[2] for place in places.values()) == [str(i) for i in range(len(places))]
    return set(places)


def _no_steps_left(cluster: SlurmCluster, job: str) -> None:
    wait_until(lambda: not cluster.steps(job), 10, f"the steps of job {job} to end", 0.05)


# -- calls, files, errors, output ------------------------------------------------------------------


def test_a_group_over_the_job_runs_a_step_on_each_node(
    slurm_cluster: SlurmCluster, job: str, group: Group
) -> None:
    assert job_nodes(job) == NODES
    assert group.hosts == NODES
    assert _steps_by_node(group, job) == {"node1", "node2"}
    assert sorted(slurm_cluster.steps(job)) == [f"{job}.0", f"{job}.1"]
    group.close()
    _no_steps_left(slurm_cluster, job)  # closing the tunnels ends their steps


def test_put_and_fetch_go_through_a_job_step(group: Group, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 7)
    local = tmp_path / "data.bin"
    local.write_bytes(data)
    digest = hashlib.sha1(data).hexdigest()
    # node1 and node2 share this machine's filesystem: one remote path per node.
    for node in group.hosts:
        sent = group[node].put(str(local), str(tmp_path / f"on-{node}.bin"))
        assert sent["sha1sum"] == digest and sent["size"] == len(data)
    fetched = group.fetch(str(tmp_path / "on-node1.bin"), str(tmp_path / "back-{host}.bin"))
    for node in NODES:
        assert fetched[node]["sha1sum"] == digest
        assert (tmp_path / f"back-{node}.bin").read_bytes() == data


def test_remote_exceptions_and_output_come_back(job: str) -> None:
    captured = Captured()
    with Srun("node2", job=job, python3=PYTHON, output=captured) as tunnel:
        with pytest.raises(RemoteException, match="it broke") as caught:
            tunnel.call(rf.boom, "it broke")
        assert caught.value.host == "node2"
        assert caught.value.remote_type == "RuntimeError"
        assert tunnel.call(rf.noisy, 3) == 3
    assert captured.text("stdout") == "out line 0\nout line 1\nout line 2\n"
    assert captured.text("stderr") == "err line 0\nerr line 1\nerr line 2\n"


# -- cancelling: timeouts, future.cancel(), Ctrl-C -------------------------------------------------


def test_a_call_timeout_stops_the_remote_python(job: str, tmp_path: Path) -> None:
    marker = tmp_path / "written"
    with Srun("node1", job=job, python3=PYTHON, call_timeout=0.5) as tunnel:
        pid = tunnel.remote_info["pid"]
        with pytest.raises(CallTimeout):
            tunnel.call(sf.sleep_then_write, str(marker), 60)
        # The agent runs one call at a time: an answer now means the sleep was interrupted.
        tunnel.call_timeout = 20
        assert tunnel.call(os.path.exists, str(marker)) is False
        assert tunnel.call(os.getpid) == pid  # the same step, still usable
    assert not marker.exists()


def test_cancelling_a_future_stops_the_remote_python(group: Group, tmp_path: Path) -> None:
    markers = {node: tmp_path / f"written-{node}" for node in NODES}
    futures = {
        node: group[node].submit(sf.sleep_then_write, str(markers[node]), 60) for node in NODES
    }
    for future in futures.values():
        assert future.cancel()
        with pytest.raises(CallCancelled):
            future.result(1)
    assert group.run(os.path.exists, (str(tmp_path / "written-node1"),), timeout=20) == {
        "node1": False,
        "node2": False,
    }
    assert not any(marker.exists() for marker in markers.values())


def test_ctrl_c_cancels_every_node_and_the_steps_stay_usable(group: Group, tmp_path: Path) -> None:
    pids = group.connect().raise_failures()
    marker = tmp_path / "written"
    with sigint_after(0.5), pytest.raises(GroupInterrupted) as caught:
        group.run(sf.sleep_then_write, (str(marker), 60))
    assert {node: result.status for node, result in caught.value.result.items()} == {
        "node1": "interrupted",
        "node2": "interrupted",
    }
    assert group.run(os.path.exists, (str(marker),), timeout=20) == {
        "node1": False,
        "node2": False,
    }
    assert group.call(os.getpid) == {node: info["pid"] for node, info in pids.items()}


# -- the job ends under the tunnels ----------------------------------------------------------------


def test_scancel_fails_the_calls_in_flight_naming_the_job(
    slurm_cluster: SlurmCluster, job: str, group: Group
) -> None:
    group.connect().raise_failures()
    futures = [tunnel.submit(sf.sleep_then_write, os.devnull, 60) for tunnel in group]
    slurm_cluster.command("scancel", job)
    for future in futures:
        # Within a few seconds (else CallTimeout, not ConnectionLost, is raised).
        with pytest.raises(ConnectionLost, match=f"job {job} was cancelled"):
            future.result(10)
    # A new step in the ended job is refused with a reason naming it.
    with pytest.raises(ConnectError, match=f"job {job} has ended"):
        group["node1"].connect()


def test_a_job_reaching_its_time_limit_fails_the_calls_saying_so(
    slurm_cluster: SlurmCluster,
) -> None:
    """A one-minute allocation (the shortest --time Slurm takes: limits are in minutes) whose
    end is then brought forward to now (``scontrol update EndTime=now``), so that Slurm ends it
    for its time limit at its next check (every 30 s) rather than after the minute: the call in
    flight fails naming the job and the reason."""
    with slurm_cluster.job(1, "--time=1") as job:
        tunnel = Srun("node1", job=job, python3=PYTHON)
        try:
            tunnel.connect()
            future = tunnel.submit(sf.sleep_then_write, os.devnull, 300)
            slurm_cluster.command("scontrol", "update", f"JobId={job}", "EndTime=now")
            with pytest.raises(ConnectionLost, match=f"job {job} reached its time limit"):
                future.result(120)
        finally:
            tunnel.close()


# -- job ids and nodes that cannot work ------------------------------------------------------------


def test_unknown_ended_and_pending_jobs_give_clear_errors(slurm_cluster: SlurmCluster) -> None:
    with pytest.raises(ConnectError, match=r"Slurm has no job 999999 \(invalid job id\)"):
        Srun("node1", job=999999, python3=PYTHON).connect()
    with pytest.raises(SlurmError, match="Slurm has no job 999999"):
        job_nodes(999999)
    with slurm_cluster.held_job() as held:
        with pytest.raises(SlurmError, match=rf"job {held} is PENDING \(JobHeldUser\)"):
            job_nodes(held)
        with pytest.raises(ConnectError, match=f"job {held} is still pending"):
            Srun("node1", job=held, python3=PYTHON).connect()
    assert str(job_state(held)) == f"job {held} has ended (CANCELLED)"
    with pytest.raises(SlurmError, match=rf"job {held} has ended \(CANCELLED\)"):
        job_tunnels(held)


def test_a_node_outside_the_allocation_is_named(slurm_cluster: SlurmCluster) -> None:
    with slurm_cluster.job(1, "--nodelist=node1") as job:
        with pytest.raises(ConnectError, match=f"node node2 is not in job {job}"):
            Srun("node2", job=job, python3=PYTHON).connect()
        with pytest.raises(ConnectError, match=f"node node9 is not in job {job}"):
            Srun("node9", job=job, python3=PYTHON).connect()


def test_a_missing_srun_or_python_is_named(job: str) -> None:
    with pytest.raises(ConnectError, match="cannot run '/nonexistent/srun': No such file"):
        Srun("node1", job=job, srun="/nonexistent/srun").connect()
    with pytest.raises(ConnectError, match="cannot run /nonexistent/python3 on node node2"):
        Srun("node2", job=job, python3="/nonexistent/python3").connect()


def test_job_ids_node_names_and_options_never_become_srun_options() -> None:
    for bad_node in ("-w", "--uid=0", "node1 node2", "node[1-2]", ""):
        with pytest.raises(ValueError, match="invalid Slurm node name"):
            Srun(bad_node, job=1)
    for bad_job in ("--uid=0", "1 --uid=0", "-1", "1.0", "", True, None):
        with pytest.raises(ValueError, match="invalid Slurm job id"):
            Srun("node1", job=bad_job)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="invalid Slurm job id"):
            job_nodes(bad_job)  # type: ignore[arg-type]
    tunnel = Srun("node1", job=42, python3=PYTHON, srun_options=["--cpus-per-task=2"])
    argv = tunnel.cmd_args()
    assert argv[:9] == [
        "srun",
        "--jobid=42",
        "--nodelist=node1",
        "--nodes=1",
        "--ntasks=1",
        "--overlap",
        "--unbuffered",
        "--quiet",
        "--cpus-per-task=2",
    ]
    assert argv[9:12] == ["--", PYTHON, "-c"]


def test_salloc_options_are_checked_and_stay_values(slurm_cluster: SlurmCluster) -> None:
    for bad in ({"x --uid": 1}, {"N": 3}, {"quiet": True}, {"no_shell": True}):
        with pytest.raises(ValueError, match="salloc option"):
            Allocation.create(1, **bad)
    with pytest.raises(ValueError, match="invalid value"):
        Allocation.create(1, comment="two\nlines")
    with pytest.raises(TypeError, match="takes a str or a number"):
        Allocation.create(1, comment=["a"])
    # A value that looks like an option is still the partition's name.
    with pytest.raises(SlurmError, match=r"salloc failed .*[Ii]nvalid partition"):
        Allocation.create(1, partition="--uid=0")
    assert slurm_cluster.command("squeue", "-h").stdout == ""


# -- allocations -----------------------------------------------------------------------------------


def test_an_allocation_runs_steps_and_release_frees_it(slurm_cluster: SlurmCluster) -> None:
    states: list[JobState] = []
    with Allocation.create(
        2, partition=slurm_cluster.partition, time=5, name="from-a-test", progress=states.append
    ) as allocation:
        job = allocation.job
        assert allocation.nodes == NODES
        assert [str(state) for state in states] == [f"job {job} is RUNNING on node[1-2]"]
        assert slurm_cluster.command("squeue", "-h", "-j", job, "-o", "%j %l").stdout.split() == [
            "from-a-test",
            "5:00",
        ]
        group = Group(allocation.tunnels(python3=PYTHON))
        assert _steps_by_node(group, job) == {"node1", "node2"}
        group.close()
    assert allocation.released
    assert not slurm_cluster.listed(job)
    assert slurm_cluster.state(job) == "CANCELLED"
    allocation.release()  # again: nothing to do


def test_releasing_ends_the_steps_still_running(slurm_cluster: SlurmCluster) -> None:
    allocation = Allocation.create(1)
    tunnel = allocation.tunnels(python3=PYTHON)[0]
    assert tunnel.allocation is allocation
    try:
        tunnel.connect()
        future = tunnel.submit(sf.sleep_then_write, os.devnull, 60)
        allocation.release()
        with pytest.raises(ConnectionLost, match=f"job {allocation.job} was cancelled"):
            future.result(10)
    finally:
        tunnel.close()
    assert not slurm_cluster.listed(allocation.job)


def test_a_pending_request_reports_its_state_and_is_withdrawn_on_timeout(
    slurm_cluster: SlurmCluster,
) -> None:
    states: list[JobState] = []
    # Three nodes out of two: pending for ever.
    with pytest.raises(SlurmError, match=r"is PENDING \(.*\): not granted within 1 s") as caught:
        Allocation.create(3, timeout=1, progress=states.append, poll_interval=0.1)
    assert states and all(state.state == "PENDING" for state in states)
    job = states[0].job
    assert states[0].reason.startswith("Partition")  # PartitionConfig, then PartitionNodeLimit
    assert f"job {job} is PENDING" in str(caught.value)
    assert slurm_cluster.state(job) == "CANCELLED"


def test_ctrl_c_while_waiting_withdraws_the_request(slurm_cluster: SlurmCluster) -> None:
    states: list[JobState] = []
    with sigint_after(0.7), pytest.raises(KeyboardInterrupt):
        Allocation.create(1, hold=True, progress=states.append, poll_interval=0.1)
    assert states[0].state == "PENDING" and states[0].reason == "JobHeldUser"
    assert slurm_cluster.state(states[0].job) == "CANCELLED"


def test_an_allocation_is_released_when_it_is_dropped(slurm_cluster: SlurmCluster) -> None:
    allocation = Allocation.create(1)
    job = allocation.job
    tunnels = allocation.tunnels()
    del allocation
    assert slurm_cluster.state(job) == "RUNNING"  # its tunnels keep it
    del tunnels
    gc.collect()
    wait_until(lambda: slurm_cluster.state(job) == "CANCELLED", 10, f"job {job} to end", 0.05)


def test_the_default_progress_report_is_logged(
    slurm_cluster: SlurmCluster, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="chopsticks_nb.slurm"):
        allocation = Allocation.create(1)
    allocation.release()
    assert caplog.messages == [f"job {allocation.job} is RUNNING on {allocation.nodes[0]}"]
