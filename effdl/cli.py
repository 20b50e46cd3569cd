"""The `effdl` command: `reproduce` runs the ledger, `course student` writes student
notebooks, `course init` makes an nbgrader course directory, `info` describes the installation."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    """Return the exit status of the `effdl` command line."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    return args.run(args)


def _reproduce(args: argparse.Namespace) -> int:
    import torch

    from effdl.claims import runner

    if args.list:
        print(runner.format_costs(quick=args.quick))
        return 0
    torch.set_num_threads(args.threads)
    try:
        results = runner.run(args.only, quick=args.quick)
    except ValueError as err:
        print(f"effdl reproduce: {err}", file=sys.stderr)
        return 2
    if not results:
        print("effdl reproduce: no claims selected", file=sys.stderr)
        return 2
    print(runner.format_table(results))
    runner.write_reports(results, args.json, args.markdown)
    return 1 if any(r.verdict == "error" for r in results) else 0


def _student(args: argparse.Namespace) -> int:
    try:
        from effdl.course.student import make_student_version
    except ImportError as err:
        return _missing_course_extra("student", err)

    try:
        written = make_student_version(args.src, args.dst, strict=args.strict)
    except ValueError as err:
        print(f"effdl course student: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


def _init(args: argparse.Namespace) -> int:
    from effdl.course.coursedir import init_course

    try:
        placed = init_course(args.dir, args.lessons)
    except ValueError as err:
        print(f"effdl course init: {err}", file=sys.stderr)
        return 2
    print(Path(args.dir) / "nbgrader_config.py")
    for path in placed:
        print(path)
    return 0


def _missing_course_extra(command: str, err: ImportError) -> int:
    # nbgrader and its notebook stack are optional: name the extra that installs them.
    print(
        f"effdl course {command}: needs the 'course' extra ({err}); install it with "
        "pip install 'effdl[course]' (or pip install -e '.[course]' in a checkout)",
        file=sys.stderr,
    )
    return 2


def _info(args: argparse.Namespace) -> int:
    import json

    import effdl
    from effdl.claims import runner

    runner.load_pillars()
    print(
        json.dumps(
            {
                "effdl": effdl.__version__,
                "machine": runner.machine(),
                "claims": sorted(runner.REGISTRY),
            },
            indent=2,
        )
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="effdl", description=__doc__)
    sub = parser.add_subparsers(title="commands")

    rep = sub.add_parser("reproduce", help="re-measure published claims and print the ledger")
    rep.add_argument(
        "--quick", action="store_true", help="only the claims that cost at most 30 s each"
    )
    rep.add_argument(
        "--list", action="store_true", help="list the claims with their costs; run nothing"
    )
    rep.add_argument("--only", nargs="+", metavar="ID", help="run only these claim ids")
    rep.add_argument("--json", metavar="FILE", help="write the JSON report here")
    rep.add_argument("--markdown", metavar="FILE", help="write the markdown report here")
    rep.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1: fastest for small models)"
    )
    rep.set_defaults(run=_reproduce)

    course = sub.add_parser("course", help="instructor tools for the lecture notebooks")
    course_sub = course.add_subparsers(title="course commands")
    student = course_sub.add_parser("student", help="write student versions of notebooks")
    student.add_argument("src", metavar="SRC_DIR", help="folder of instructor notebooks")
    student.add_argument("dst", metavar="DST_DIR", help="folder to write student notebooks to")
    student.add_argument(
        "--strict",
        action="store_true",
        help="also enforce the kit's lesson rules (solution markers, a hidden test per test cell)",
    )
    student.set_defaults(run=_student)
    init = course_sub.add_parser("init", help="make an nbgrader course directory of the lessons")
    init.add_argument("dir", metavar="DIR", help="new or empty folder for the course directory")
    init.add_argument(
        "--lessons",
        metavar="SRC_DIR",
        help="folder of instructor notebooks (default: the kit's course/ folder)",
    )
    init.set_defaults(run=_init)

    info = sub.add_parser("info", help="print versions, machine and registered claims")
    info.set_defaults(run=_info)
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
