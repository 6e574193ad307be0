"""``python -m jaxrnn.launch --processes N script.py [args]``: a multi-process run on one machine.

Starts ``N`` copies of ``script.py`` with ``JAX_COORDINATOR_ADDRESS`` (a free port on the
loopback address), ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` set, which
`jaxrnn.distributed.initialize` reads. It watches them: when one fails, it names it (exit
status or signal), gives the others ``--grace`` seconds to stop by themselves (JAX stops
them once the lost process misses its heartbeats), then ends them, so that nothing is left
running. Exit status 0 when every process succeeded, 1 when one failed, 2 for bad arguments.
On a cluster the scheduler starts the processes instead (see the README's "Many devices").
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit status 2, like every jaxrnn command
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def free_port() -> int:
    """A TCP port on the loopback address that nothing listens on right now.

    Examples:
      >>> from jaxrnn.launch import free_port
      >>> 1024 <= free_port() < 65536
      True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_in_use(port: int) -> str | None:
    """Why ``port`` on 127.0.0.1 cannot be the coordinator's (e.g. ``"Address already in
    use"``), or None when it is free.

    Examples:
      >>> from jaxrnn.launch import free_port, port_in_use
      >>> port_in_use(free_port()) is None
      True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the coordinator binds (gRPC sets it): a port a run just left, still in
        # TIME_WAIT, is free for the next run.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            return error.strerror or str(error)
    return None


def describe(returncode: int) -> str:
    """How a process ended, in words: ``"was killed by SIGKILL"``, ``"exited with status 3"``.

    Examples:
      >>> from jaxrnn.launch import describe
      >>> describe(-9), describe(3)
      ('was killed by SIGKILL', 'exited with status 3')
    """
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with status {returncode}"


def launch(
    command: Sequence[str], processes: int, *, port: int | None = None, grace: float = 60.0
) -> int:
    """Runs ``command`` as ``processes`` processes of one JAX run; returns the exit status.

    Args:
      command: the program and its arguments, e.g. ``[sys.executable, "train.py"]``.
      processes: how many processes (at least 1).
      port: the coordinator's port on 127.0.0.1 (None: a free one).
      grace: seconds the other processes get to stop by themselves after one fails.

    Returns:
      0 when every process succeeded, else 1 (after naming the first that failed).

    Examples:
      >>> import sys
      >>> from jaxrnn.launch import launch
      >>> launch([sys.executable, "-c", "import os; assert os.environ['JAX_NUM_PROCESSES']"], 2)
      0
    """
    from jaxrnn.checks import check_size  # here: the launcher itself needs no JAX to start

    check_size("processes", processes)
    if port is not None and (problem := port_in_use(port)) is not None:
        raise ValueError(
            f"port {port} on 127.0.0.1 cannot be the coordinator's ({problem}); pass another "
            "--port, or none to use a free one"
        )
    cores = os.cpu_count() or 1
    if processes > cores:
        print(
            f"warning: {processes} processes on {cores} CPU cores: each is a whole JAX runtime "
            "and they will take turns on the cores; fewer processes (one per device) is faster",
            file=sys.stderr,
            flush=True,
        )
    address = f"127.0.0.1:{port or free_port()}"
    children = []
    for index in range(processes):
        env = {
            **os.environ,
            "JAX_COORDINATOR_ADDRESS": address,
            "JAX_NUM_PROCESSES": str(processes),
            "JAX_PROCESS_ID": str(index),
        }
        children.append(subprocess.Popen(list(command), env=env))
    try:
        failed, first_out = _watch(children)
        if failed is not None:
            print(f"error: {_blame(children, failed, first_out)}", file=sys.stderr, flush=True)
            started = time.monotonic()
            _stop(children, grace)
            print(
                f"all processes ended {time.monotonic() - started:.1f} s after process "
                f"{failed} failed",
                file=sys.stderr,
                flush=True,
            )
            return 1
        return 0
    except KeyboardInterrupt:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)  # each saves a checkpoint and stops
        _stop(children, grace)
        raise
    finally:
        _stop(children, 0)


def _watch(children) -> tuple[int | None, int | None]:
    """Waits until every process ended or one failed: ``(the failed one, the first to end
    while others still ran)``, indices or None."""
    failed = first_out = None
    while failed is None and any(child.poll() is None for child in children):
        for i, child in enumerate(children):
            if child.poll() is not None and first_out is None:
                first_out = i if any(c.poll() is None for c in children) else None
        failed = next((i for i, c in enumerate(children) if c.poll() not in (None, 0)), None)
        time.sleep(0.05)
    if failed is None:
        failed = next((i for i, c in enumerate(children) if c.returncode != 0), None)
    return failed, first_out


def _blame(children, failed: int, first_out: int | None) -> str:
    """The error line: the failed process, and before it the one that ended early (with
    status 0, say) while the others still ran, which is what the others waited for."""
    count, child = len(children), children[failed]
    text = f"process {failed} of {count} (pid {child.pid}) {describe(child.returncode)}"
    if first_out is not None and first_out != failed:
        early = children[first_out]
        text += (
            f", after process {first_out} (pid {early.pid}) {describe(early.returncode)} while "
            "the others were still running: the others wait for every process at each "
            "collective, so look at that one first"
        )
    return f"{text}; stopping the others"


def _stop(children, grace: float) -> None:
    """Waits up to ``grace`` seconds for ``children`` to end, then terminates, then kills."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(c.poll() is None for c in children):
        time.sleep(0.05)
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: parses ``argv`` and runs `launch`; returns the exit status.

    Examples:
      >>> from jaxrnn.launch import main
      >>> main(["-n", "1", "/nonexistent.py"])
      Traceback (most recent call last):
      SystemExit: 2
    """
    parser = _Parser(
        prog="python -m jaxrnn.launch",
        description="Run a script as several processes of one JAX run on this machine.",
    )
    parser.add_argument("--processes", "-n", type=int, required=True, help="how many processes")
    parser.add_argument("--port", type=int, default=None, help="coordinator port (default: free)")
    parser.add_argument(
        "--grace", type=float, default=60.0, help="seconds the others get after one fails"
    )
    parser.add_argument("script", help="the Python script every process runs")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the script's arguments")
    args = parser.parse_args(argv)
    if args.processes < 1:
        parser.error(f"--processes must be at least 1, got {args.processes}")
    if args.port is not None and not 0 < args.port < 65536:
        parser.error(f"--port must be in 1..65535, got {args.port}")
    if args.grace < 0:
        parser.error(f"--grace must be >= 0, got {args.grace}")
    if not os.path.isfile(args.script):
        parser.error(f"script {args.script} does not exist")
    if args.port is not None and (problem := port_in_use(args.port)) is not None:
        parser.error(f"--port {args.port} on 127.0.0.1 is not free ({problem}); pass another")
    command = [sys.executable, args.script, *args.args]
    return launch(command, args.processes, port=args.port, grace=args.grace)


__all__ = ("describe", "free_port", "launch", "main", "port_in_use")


if __name__ == "__main__":
    sys.exit(main())
