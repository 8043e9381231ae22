"""The ``atombench`` command line (also ``python -m atombench``).

Exit codes: 0 success; 1 a run error (e.g. a distillation that diverged); 2 bad input (suite file, names,
values, missing data), reported before any work; 3 the run finished but some evaluation jobs failed;
130 interrupted. Errors are one line each; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import sys
import textwrap

from . import __version__

EPILOG = textwrap.dedent("""\
    examples:
      atombench run suites/quickstart.yaml      distil and evaluate everything the suite names
      atombench validate my_suite.yaml          check a suite without running it
      atombench list distillers                 what can be named in a suite
    """)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="atombench", description="Dataset-distillation benchmark suite built around ATOM.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"atombench {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run a suite: distil, evaluate, tabulate",
                         description="Distil each (dataset, distiller, IPC, seed) once, train every model on "
                                     "each synthetic set, and write results.csv and summary.md under the "
                                     "suite's output folder (default results/<suite name>/). Work already "
                                     "done is reused.")
    run.add_argument("suite", help="path of a YAML suite file")
    run.add_argument("--force", action="store_true", help="recompute synthetic sets and jobs that are done")
    run.add_argument("--workers", type=int, help="evaluation worker processes (default: from the suite, "
                                                 "else as many as cores)")
    run.add_argument("--device", choices=["auto", "cpu", "cuda"], help="override the suite's device")
    run.add_argument("--output", help="override the suite's output folder")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    val = sub.add_parser("validate", help="check a suite file without running anything",
                         description="Check a suite file: syntax, keys, types, names of plug-ins and their "
                                     "options. Prints every problem with its key path; exit code 2 if any.")
    val.add_argument("suite")
    val.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    lst = sub.add_parser("list", help="list registered distillers, models or datasets",
                         description="List plug-ins with a one-line description. Plug-ins come from the "
                                     "entry-point groups atombench.distillers, atombench.models and "
                                     "atombench.datasets; any timm model is available as timm:<name>.")
    lst.add_argument("kind", nargs="?", choices=["distillers", "models", "datasets"],
                     help="which kind (default: all)")
    lst.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return p


def _cmd_list(args: argparse.Namespace) -> int:
    from . import registry

    kinds = [args.kind] if args.kind else list(registry.REGISTRIES)
    broken = 0
    for kind in kinds:
        rows = registry.REGISTRIES[kind].describe_all()
        print(f"{kind}:")
        width = max((len(n) for n, _ in rows), default=0)
        for name, text in rows:
            broken += text.startswith("FAILED TO LOAD")
            print(f"  {name.ljust(width)}  {text}")
    return 1 if broken else 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from .suite import load_suite

    suite = load_suite(args.suite)
    print(f"{args.suite}: ok ({len(suite.datasets)} dataset(s), {len(suite.distillers)} distiller(s), "
          f"{len(suite.ipc)} IPC(s), {len(suite.models)} model(s), {len(suite.seed_list)} seed(s))")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from .errors import UsageError
    from .runner import run_suite

    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    report = run_suite(args.suite, force=args.force, workers=args.workers, device=args.device,
                       output=args.output, progress=not args.quiet)
    print((report.root / "summary.md").read_text(), end="")
    print(f"results: {report.root / 'results.csv'}")
    if report.failed:
        print(f"error: {report.failed} evaluation job(s) failed; their reasons are in the 'error' column of "
              f"{report.root / 'results.csv'}", file=sys.stderr)
        return 3
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 2
    from .errors import AtombenchError

    try:
        return {"run": _cmd_run, "validate": _cmd_validate, "list": _cmd_list}[args.command](args)
    except AtombenchError as err:
        if args.debug:
            raise
        for line in str(err).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("error: interrupted; finished jobs are kept, run the same command again to complete the rest",
              file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
