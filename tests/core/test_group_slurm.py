"""``Group.from_slurm`` and ``Group.allocate`` against the real two-node cluster of
``slurm_cluster``: the groups are made of job steps, and closing an allocated group releases it."""

from __future__ import annotations

import pytest
import slurm_funcs as sf

import chopsticks_nb
from chopsticks_nb.group import Group
from chopsticks_nb.slurm import JobState, SlurmError, Srun
from fixtures.slurm import SlurmCluster
from fixtures.system import wait_until

PYTHON = "/usr/bin/python3"
NODES = ["node1", "node2"]


def test_from_slurm_runs_a_step_on_each_node_of_the_job(slurm_cluster: SlurmCluster) -> None:
    with slurm_cluster.job(2) as job:
        group = Group.from_slurm(job, python3=PYTHON)
        with group:
            assert group.hosts == NODES
            assert all(isinstance(t, Srun) and t.job == job for t in group)
            places = group.call(sf.where).raise_failures()
            assert {node: place[:2] for node, place in places.items()} == {
                node: (node, job) for node in NODES
            }
        # closing a group made from a job leaves the job alone: it is not the group's
        assert slurm_cluster.state(job) == "RUNNING"


def test_from_slurm_names_a_job_that_is_not_running(slurm_cluster: SlurmCluster) -> None:
    with slurm_cluster.held_job() as job, pytest.raises(SlurmError, match=f"job {job} is PENDING"):
        Group.from_slurm(job)


def test_allocate_makes_a_group_whose_close_releases_the_nodes(
    slurm_cluster: SlurmCluster,
) -> None:
    states: list[JobState] = []
    with Group.allocate(
        2,
        partition=slurm_cluster.partition,
        time=5,
        name="group-test",
        progress=states.append,
        tunnel_options={"python3": PYTHON},
    ) as group:
        job = group["node1"].job  # type: ignore[attr-defined]
        assert group.hosts == NODES and states[-1].state == "RUNNING"
        assert slurm_cluster.command("squeue", "-h", "-j", job, "-o", "%j").stdout.strip() == (
            "group-test"
        )
        places = group.call(sf.where).raise_failures()
        assert {place[1] for place in places.values()} == {job}
    assert slurm_cluster.state(job) == "CANCELLED" and not slurm_cluster.listed(job)
    group.close()  # again: nothing more to release


def test_allocate_releases_the_nodes_when_the_tunnels_cannot_be_made(
    slurm_cluster: SlurmCluster,
) -> None:
    states: list[JobState] = []
    with pytest.raises(TypeError, match="bogus"):
        Group.allocate(1, progress=states.append, tunnel_options={"bogus": 1})
    job = states[-1].job
    wait_until(lambda: slurm_cluster.state(job) == "CANCELLED", 10, f"job {job} to end", 0.05)


def test_the_slurm_names_are_the_packages() -> None:
    for name in ("Srun", "Allocation", "SlurmError", "JobState"):
        assert getattr(chopsticks_nb, name) is getattr(chopsticks_nb.slurm, name)
    assert issubclass(chopsticks_nb.SlurmError, chopsticks_nb.ConnectError)
