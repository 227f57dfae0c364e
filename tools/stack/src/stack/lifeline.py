"""``python -m stack.lifeline <parent-pid> <program> [args...]``: run a program that dies with its parent.

``stack.procs.spawn`` starts every child through this shim, which arranges the death and then
*replaces itself* with the program (``execvp``): no middle process is left that could be
orphaned, and the pid the parent knows is the program's.

- Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, which survives ``exec``. The kernel sends it when
  the *thread* that forked the child exits, which is why ``spawn`` forks from one long-lived
  thread. SIGKILL rather than SIGTERM: it also ends a process frozen by ``stack pause``.
- Elsewhere (no ``prctl``, e.g. macOS): a watcher forked beside the program, in its process
  group, polls the parent and kills the group when the parent is gone (and exits by itself
  when the program ends). ``STACK_LIFELINE=watch`` selects it on Linux too (tests).

If the parent died before the guard was armed, the program is not started at all.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time

PR_SET_PDEATHSIG = 1
WATCH_EVERY_S = 0.5


def _parent_gone(parent: int) -> bool:
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # a zombie parent is dead too (Linux shows it; elsewhere it counts as alive)
        with open(f"/proc/{parent}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rpartition(")")[2].split()[:1] == ["Z"]
    except OSError:
        return False


def _arm_pdeathsig() -> bool:
    """Ask the kernel for SIGKILL when the parent thread exits; False where there is no prctl."""
    if not sys.platform.startswith("linux") or os.environ.get("STACK_LIFELINE") == "watch":
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    return True


def _fork_watcher(parent: int) -> None:
    """Fork a process that kills this process's group once ``parent`` is gone."""
    program = os.getpid()
    if os.fork() != 0:
        return
    # The watcher: no stdin, and it must never run the parent's cleanup code.
    try:
        while True:
            time.sleep(WATCH_EVERY_S)
            if os.getppid() != program:
                os._exit(0)  # the program ended: nothing left to guard
            if _parent_gone(parent):
                with contextlib.suppress(OSError):
                    os.killpg(os.getpgid(program), signal.SIGKILL)
                os._exit(0)
    except BaseException:
        os._exit(1)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python -m stack.lifeline <parent-pid> <program> [args...]", file=sys.stderr)
        return 2
    parent = int(argv[0])
    if not _arm_pdeathsig():
        _fork_watcher(parent)
    if os.getppid() != parent:
        return 0  # the parent died before the guard was armed: start nothing
    try:
        os.execvp(argv[1], argv[1:])  # noqa: S606 - replacing this shim by the program is the point
    except OSError as exc:
        print(f"stack.lifeline: cannot run {argv[1]}: {exc}", file=sys.stderr)
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
