"""Smoke tests of the real-component fixtures: each one is started and used for real."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
from pathlib import Path

import pytest

from chopsticks_nb.tunnel import BaseTunnel
from fixtures.leaks import find_leaks, snapshot
from fixtures.podman import PodmanImage
from fixtures.pythons import SUPPORTED_VERSIONS, RemotePython, RemotePythons
from fixtures.slurm import SlurmCluster, start_cluster
from fixtures.sshd import SSHHosts
from fixtures.sudo import SudoUsers
from fixtures.system import process_alive, wait_until
from fixtures.transports import Transport

TESTS_DIR = Path(__file__).resolve().parents[1]
ALL_BYTES = bytes(range(256)) * 64


def run(
    argv: list[str],
    stdin: bytes = b"",
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, input=stdin, env=env, capture_output=True, timeout=60, check=False)


# ---------------------------------------------------------------- sshd_hosts


def test_ssh_reaches_every_host_as_the_test_user(sshd_hosts: SSHHosts) -> None:
    program = "import os; print(os.getuid(), os.environ['SSH_CONNECTION'].split()[2])"
    procs = {
        name: subprocess.Popen(
            sshd_hosts.ssh_argv(name, f'python3 -c "{program}"'),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name in sshd_hosts.names
    }
    uid = pwd.getpwnam(sshd_hosts.user).pw_uid
    assert sshd_hosts.names == ["web1", "web2", "web3", "web4"]
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert out.split() == [str(uid).encode(), sshd_hosts.addresses[name].encode()]


def test_ssh_pipes_binary_data(sshd_hosts: SSHHosts) -> None:
    program = "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read()[::-1])"
    proc = run(sshd_hosts.ssh_argv("web1", f'python3 -c "{program}"'), ALL_BYTES)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ALL_BYTES[::-1]


def test_one_host_can_be_stopped_and_started(sshd_hosts: SSHHosts) -> None:
    with sshd_hosts.down("web2"):
        assert not sshd_hosts.is_running("web2")
        refused = run(sshd_hosts.ssh_argv("web2", "true"))
        assert refused.returncode == 255
        assert run(sshd_hosts.ssh_argv("web3", "true")).returncode == 0
    assert sshd_hosts.is_running("web2")
    assert run(sshd_hosts.ssh_argv("web2", "true")).returncode == 0


def test_remote_python_runs_over_ssh_as_the_test_user(
    sshd_hosts: SSHHosts, remote_python: RemotePython
) -> None:
    program = "import sys; print('%d.%d' % sys.version_info[:2])"
    proc = run(sshd_hosts.ssh_argv("web1", f'{remote_python.path} -c "{program}"'))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().strip() == remote_python.version


# ---------------------------------------------------------------- remote_pythons


def test_every_supported_python_is_present(remote_pythons: RemotePythons) -> None:
    assert sorted(remote_pythons.supported, key=lambda v: tuple(map(int, v.split(".")))) == list(
        SUPPORTED_VERSIONS
    )
    assert remote_pythons.get("2.7") is not None  # for "too old" error tests
    assert remote_pythons.get("2.6") is None


# ---------------------------------------------------------------- sudo_user


def test_root_runs_python_as_the_target_user(sudo_user: SudoUsers) -> None:
    proc = run(sudo_user.sudo_argv("-c", "import os; print(os.getuid())"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(sudo_user.target_uid).encode()


def test_test_user_runs_python_as_the_target_user(sudo_user: SudoUsers) -> None:
    proc = run(sudo_user.as_user(sudo_user.sudo_argv("-c", "import os; print(os.getuid())")))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(sudo_user.target_uid).encode()
    echo = "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())"
    proc = run(sudo_user.as_user(sudo_user.sudo_argv("-c", echo)), ALL_BYTES)
    assert proc.stdout == ALL_BYTES


def test_test_user_runs_pyenv_python_as_the_target_user(
    sudo_user: SudoUsers, remote_pythons: RemotePythons
) -> None:
    python = str(remote_pythons.path("3.6"))
    argv = sudo_user.sudo_argv(
        "-c", "import os, sys; print(os.getuid(), sys.version_info[1])", python=python
    )
    proc = run(sudo_user.as_user(argv))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(sudo_user.target_uid).encode(), b"6"]


def test_sudo_refuses_other_targets_without_prompting(sudo_user: SudoUsers) -> None:
    argv = ["sudo", "-n", "-u", "root", "--", "/usr/bin/python3", "-c", "print(1)"]
    proc = run(sudo_user.as_user(argv))
    assert proc.returncode != 0
    assert b"password is required" in proc.stderr


# ---------------------------------------------------------------- podman_image


PROGRAM = b"""
import os, sys
print(os.getuid(), sys.version_info[0], open("/etc/debian_version").read().split(".")[0])
"""


def test_podman_runs_python_from_stdin(podman_image: PodmanImage) -> None:
    proc = run(podman_image.run_argv("python3"), PROGRAM, env=podman_image.env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [b"0", b"3", b"12"]


def test_docker_shim_runs_podman(podman_image: PodmanImage) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTAINERS_")}
    argv = [
        str(podman_image.docker),
        "run",
        "--rm",
        "-i",
        "--network",
        "none",
        podman_image.image,
        "python3",
    ]
    proc = run(argv, PROGRAM, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [b"0", b"3", b"12"]


# ---------------------------------------------------------------- slurm_cluster


def test_slurm_runs_a_step_on_each_node_of_an_allocation(slurm_cluster: SlurmCluster) -> None:
    assert slurm_cluster.node_states() == {"node1": "idle", "node2": "idle"}
    assert os.environ["SLURM_CONF"] == str(slurm_cluster.conf)
    program = "import os, sys; print(os.environ['SLURMD_NODENAME'], sys.stdin.read())"
    with slurm_cluster.job(2) as job:
        assert slurm_cluster.state(job) == "RUNNING"
        for node in ("node1", "node2"):
            argv = ["srun", f"--jobid={job}", f"--nodelist={node}", "-N1", "-n1", "--overlap"]
            proc = run([*argv, "/usr/bin/python3", "-c", program], b"hello")
            assert proc.returncode == 0, proc.stderr
            assert proc.stdout.split() == [node.encode(), b"hello"]
    assert not slurm_cluster.listed(job)
    assert slurm_cluster.state(job) == "CANCELLED"


def test_slurm_daemons_are_not_children_of_the_tests(slurm_cluster: SlurmCluster) -> None:
    daemons = slurm_cluster.daemons()
    names = sorted(Path(f"/proc/{pid}/comm").read_text().strip() for pid in daemons)
    assert names.count("slurmd") == 2 and "slurmctld" in names
    assert all(
        Path(f"/proc/{pid}/stat").read_text().split()[3] != str(os.getpid()) for pid in daemons
    )


def test_a_stopped_slurm_cluster_leaves_no_daemon_or_job_behind(
    slurm_cluster: SlurmCluster,
) -> None:
    """A second cluster beside the session's: a job step runs on it, then it is stopped."""
    directory = Path(tempfile.mkdtemp(prefix="chopsticks-nb-slurm-test-"))
    try:
        cluster = start_cluster(directory)
        step = None
        try:
            step = subprocess.Popen(
                ["srun", "-N1", "-n1", "-w", "node2", "sleep", "321"],
                env=cluster.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            wait_until(lambda: _sleeps("321"), 10, "the job step to run")
            names = {Path(f"/proc/{pid}/comm").read_text().strip() for pid in cluster.daemons()}
            assert {"slurmctld", "slurmd", "slurmstepd"} <= names
        finally:
            cluster.stop()
            if step is not None:
                step.wait(10)  # srun ends with its job
        assert cluster.daemons() == []
        wait_until(lambda: not _sleeps("321"), 10, "the step's process to end")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _sleeps(seconds: str) -> list[int]:
    """Live ``sleep SECONDS`` processes (by any path to sleep)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and process_alive(int(entry)):
            try:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")[:-1]
            except OSError:
                continue
            if (
                len(argv) == 2
                and Path(os.fsdecode(argv[0])).name == "sleep"
                and argv[1] == seconds.encode()
            ):
                found.append(int(entry))
    return found


# ---------------------------------------------------------------- leak_check


def test_leak_check_sees_children_threads_and_fds() -> None:
    before = snapshot()
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="deliberate-leak")
    thread.start()
    read_fd, write_fd = os.pipe()
    try:
        leaks = find_leaks(before, snapshot())
        assert child.pid in leaks.children
        assert thread in leaks.threads
        assert {read_fd, write_fd} <= set(leaks.fds)
    finally:
        os.close(read_fd)
        os.close(write_fd)
        stop.set()
        thread.join()
        assert child.stdin is not None
        child.stdin.close()
        child.wait()
    assert not find_leaks(before, snapshot())


def test_leak_check_fails_a_leaking_test(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(TESTS_DIR))
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("CHOPSTICKS_NB_LEAK_GRACE", "0.3")
    pytester.makeconftest('pytest_plugins = ["fixtures.leaks"]')
    pytester.makepyfile(
        textwrap.dedent("""
        import subprocess, sys
        import pytest

        def start():
            # exits when its stdin closes, i.e. when this pytest run ends
            return subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                                    stdin=subprocess.PIPE)

        def test_leaks():
            start()

        @pytest.mark.allow_leaks("checking the opt-out")
        def test_allowed():
            start()

        def test_clean():
            with start() as child:
                child.stdin.close()
    """)
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*the test leaked*", "*child process*sys.stdin.read()*"])


# ---------------------------------------------------------------- CI strictness


CI_TESTS = textwrap.dedent("""
    import pytest
    from fixtures.ci import unavailable

    def test_ok():
        pass

    def test_missing_component():
        unavailable("no frobnicator here")
""")


@pytest.mark.parametrize("ci", ["", "true"])
def test_ci_turns_skips_into_failures(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(TESTS_DIR))
    monkeypatch.setenv("CI", ci)
    pytester.makeconftest('pytest_plugins = ["fixtures.ci"]')
    pytester.makepyfile(CI_TESTS + "\ndef test_skipped():\n    pytest.skip('plain skip')\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs")
    if ci:
        result.assert_outcomes(passed=1, failed=1, skipped=1)
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.stdout.fnmatch_lines(
            [
                "*component unavailable (CI=true*no frobnicator here*",
                "*skipped tests fail the run when CI=true*",
                "SKIPPED *test_skipped*plain skip*",
            ]
        )
    else:
        result.assert_outcomes(passed=1, skipped=2)
        assert result.ret == pytest.ExitCode.OK


# ---------------------------------------------------------------- transport / any_tunnel


def test_each_transport_reaches_the_agent_it_names(
    any_tunnel: BaseTunnel, transport: Transport, sudo_user: SudoUsers
) -> None:
    assert any_tunnel.call(os.getuid) == transport.remote_uid
    if transport.kind == "local":
        assert any_tunnel.call(os.getppid) == os.getpid()
    elif transport.kind == "ssh":
        assert any_tunnel.call(os.getenv, "SSH_CONNECTION").split()[2] == "127.0.0.2"
    elif transport.kind == "sudo":  # started by the test user, so through the sudoers rule
        assert any_tunnel.call(os.getenv, "SUDO_UID") == str(sudo_user.user_uid)
    elif transport.kind == "relayed":  # started by the relay's agent, not by this process
        relay = any_tunnel.via
        assert relay is not None and relay.connected
        assert any_tunnel.call(os.getppid) == relay.remote_info["pid"] != os.getpid()
    else:
        assert transport.kind == "podman"
        assert any_tunnel.call(os.path.exists, "/run/.containerenv")
        assert any_tunnel.call(os.getpid) == 1


def test_transport_starts_only_the_component_it_needs(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(TESTS_DIR))
    monkeypatch.delenv("CI", raising=False)
    pytester.makeconftest(
        "pytest_plugins = ['fixtures.ci', 'fixtures.pythons', 'fixtures.sshd', 'fixtures.sudo',"
        " 'fixtures.podman', 'fixtures.transports']"
    )
    pytester.makepyfile(
        "import os\n\ndef test_uid(any_tunnel):\n    assert any_tunnel.call(os.getuid) == 0\n"
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-k", "local")
    result.assert_outcomes(passed=1, deselected=4)
    result.stdout.no_fnmatch_line("*fixture startup*")
