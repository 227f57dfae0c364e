"""Check the Avro event contracts: conventions, and BACKWARD + FORWARD compatibility.

    uv run python tools/contracts/avro.py check                  # contracts/events
    uv run python tools/contracts/avro.py check --dir path/to/events

Exit status 0 when every rule holds, 1 with one line per problem otherwise, e.g.::

    ReservationCreated: v2 is not BACKWARD compatible with v1 (a v2 reader can't read v1
    messages): field 'guests': v1 messages don't carry it and v2 has no default for it (fix: ...)

The rules and the reasons are in docs/contracts.md ("Events (Avro)"); the checks themselves
are ``common.messaging.compatibility`` (Apache Avro's ReaderWriterCompatibilityChecker).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name would shadow the
# Apache `avro` package the checks use: take the folder off the path before importing them.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from common.messaging.codec import default_contracts_dir  # noqa: E402
from common.messaging.compatibility import check_contracts  # noqa: E402


def check(folder: Path) -> int:
    problems = check_contracts(folder)
    for problem in problems:
        print(problem)
    versions: dict[str, int] = {}
    for path in folder.glob("*.avsc"):
        event = path.name.split(".")[0]
        versions[event] = versions.get(event, 0) + 1
    pairs = sum(n * (n - 1) // 2 for n in versions.values())
    summary = (
        f"{folder}: {len(versions)} events, {sum(versions.values())} schema files, "
        f"{pairs} version pair(s) checked both ways"
    )
    if problems:
        print(f"\n{summary}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"{summary}: all compatible, conventions kept")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="avro.py", description=__doc__.splitlines()[0] if __doc__ else "")
    commands = parser.add_subparsers(dest="command", required=True)
    check_cmd = commands.add_parser("check", help="conventions and compatibility of every event schema")
    check_cmd.add_argument("--dir", type=Path, default=None, help="schema folder (default: contracts/events)")
    args = parser.parse_args(argv)
    return check(args.dir or default_contracts_dir())


if __name__ == "__main__":
    sys.exit(main())
