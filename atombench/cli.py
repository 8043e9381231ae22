"""The ``atombench`` command line (also ``python -m atombench``).

Exit codes: 0 success; 1 a run error (e.g. the disk filled up; finished work is kept); 2 bad input (suite
file, names, values, missing data), reported before any work; 3 the run finished but some jobs failed (an
evaluation, or a distillation, e.g. one that diverged, whose evaluations then fail with it); 130 interrupted.
Errors are one line each; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap

from . import __version__

EPILOG = textwrap.dedent("""\
    examples:
      atombench run suites/quickstart.yaml      distil and evaluate everything the suite names
      atombench validate my_suite.yaml          check a suite without running it
      atombench plan suites/quickstart.yaml     its job graph: done, to run, estimated cost
      atombench list distillers                 what can be named in a suite
      atombench report results/quickstart       tables, plots and a page under results/quickstart/report/
      atombench evaluate SET.pt --dataset cifar10 --space normalised   evaluate one set made elsewhere
      atombench export results/quickstart --format npz --output sets/   every set of a results folder, for elsewhere
    """)

REPORT_EPILOG = textwrap.dedent("""\
    examples:
      atombench report results/quickstart
      atombench report results/quickstart --where ipc=1,10 --rows random,dm,atom --precision 2
      atombench report results/cifar_a results/cifar_b --output results/cifar_report   (merge runs)
      atombench report results/quickstart --model timm:resnet10t --columns digits:10 --published all

    --where takes any column of results.csv (or of nas.csv / nas_summary.csv): dataset, distiller, method,
    ipc, model, seed, device, results_dir, ...; COLUMN=V1,V2 keeps rows with one of the values, COLUMN!=V
    drops them. Repeat it to combine filters.
    """)


class _Parser(argparse.ArgumentParser):
    """argparse's parser with its errors on one line (``error: atombench export: the following arguments are
    required: --output; atombench export --help shows the usage``), not its usage block; exit code 2 as argparse's.
    Its sub-commands' parsers are of this class too."""

    def error(self, message: str):
        first = " ".join(str(message).split())
        self.exit(2, f"error: {self.prog}: {first}; {self.prog} --help shows the usage\n")


def _workers(text: str) -> int:
    """``--workers``: a whole number from 1 to :data:`atombench.suite.MAX_WORKERS`, as ``execution.workers``."""
    from .suite import MAX_WORKERS

    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: '{text}'") from None
    if not 1 <= n <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_WORKERS}, got {n}")
    return n


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="atombench", description="Dataset-distillation benchmark suite built around ATOM.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"atombench {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run a suite: distil, evaluate, tabulate",
                         description="Distil each (dataset, distiller, IPC, seed) once, train every model on "
                                     "each synthetic set, and write results.csv and summary.md under the "
                                     "suite's output folder (default results/<suite name>/). Work already "
                                     "done is reused; a distillation killed part-way resumes from its last "
                                     "snapshot or checkpoint (execution.checkpoint_minutes). The jobs run on the suite's engine (execution.engine: "
                                     "loky, sequential, dask, ray, slurm or submitit; default loky).")
    run.add_argument("suite", help="path of a YAML suite file")
    run.add_argument("--force", action="store_true", help="recompute synthetic sets and jobs that are done")
    run.add_argument("--workers", type=_workers, help="units of work the engine keeps in flight at once, distillations "
                                                 "and evaluations alike (default: the suite's execution.workers, "
                                                 "else as many as cores on CPU, one per GPU)")
    run.add_argument("--device", choices=["auto", "cpu", "cuda"], help="override the suite's device")
    run.add_argument("--output", help="override the suite's output folder")
    run.add_argument("--no-distill", action="store_true",
                     help="evaluate what is already distilled (final sets and snapshots) and distil nothing: the "
                          "budget curve so far of a run still going on or cut off, or sets distilled on "
                          "another machine into the same folder; the other evaluations stay pending")
    run.add_argument("--only", action="append", default=[], metavar="COLUMN=V1[,V2]",
                     help="run a part of the grid: the jobs whose results rows have one of these values in COLUMN "
                          "(a column that identifies a cell of results.csv: dataset, distiller, ipc, seed, model, "
                          "protocol, iteration, ...), and the distillations they need; repeatable (every one must "
                          "hold). The rest stays pending (an architecture search runs whole, only without --only); "
                          "a later run into the same folder reuses all that is done. E.g. --only ipc=1 --only seed=0")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument("--no-report", action="store_true",
                     help="skip the report (tables, plots, page) written under <output>/report/ after the run")
    run.add_argument("--dry-run", action="store_true",
                     help="print the job graph (as 'atombench plan'; with --no-distill, what that run would evaluate "
                          "and leave pending) and run nothing")
    run.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    pln = sub.add_parser("plan", help="print a suite's job graph: what is done, what remains, its estimated cost",
                         description="Check the suite as 'run' does, then print its job graph without running "
                                     "anything: the distillation, evaluation and architecture-search jobs, how "
                                     "many are done, claimed by another run into the same folder, and to run, "
                                     "the engine and workers that would run them, and the compute left, "
                                     "estimated from the costs recorded in the results folder by earlier runs "
                                     "(a job never run is scaled from its relatives: the same method or network "
                                     "on the same images at another IPC, budget or protocol). Writes nothing.")
    pln.add_argument("suite", help="path of a YAML suite file")
    pln.add_argument("--workers", type=_workers, help="as for run")
    pln.add_argument("--device", choices=["auto", "cpu", "cuda"], help="as for run")
    pln.add_argument("--output", help="as for run")
    pln.add_argument("--force", action="store_true", help="plan as 'run --force' would (everything to run)")
    pln.add_argument("--only", action="append", default=[], metavar="COLUMN=V1[,V2]",
                     help="plan as 'run --only' would (a part of the grid; repeatable)")
    pln.add_argument("--costs-from", action="append", default=[], metavar="FOLDER",
                     help="also estimate from the costs recorded in another results folder (a pilot run of the "
                          "same methods and networks on the same data), for a suite with no record yet: a job is "
                          "scaled from its relatives there as from its own folder's; repeatable")
    pln.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    val = sub.add_parser("validate", help="check a suite file without running anything",
                         description="Check a suite file exactly as 'run' does before any work: syntax, keys, "
                                     "types, names of plug-ins and their options, then the datasets (loaded), "
                                     "each IPC against each class size, each model against each image size. "
                                     "Prints every problem with its key path; exit code 2 if any. Writes "
                                     "nothing.")
    val.add_argument("suite")
    val.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    lst = sub.add_parser("list", help="list registered distillers, models or datasets",
                         description="List plug-ins with a one-line description. Plug-ins come from the "
                                     "entry-point groups atombench.distillers, atombench.models and "
                                     "atombench.datasets; any timm model is available as timm:<name>.")
    lst.add_argument("kind", nargs="?", choices=["distillers", "models", "datasets"],
                     help="which kind (default: all)")
    lst.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    rep = sub.add_parser("report", help="paper-style tables, plots and a page from a results folder",
                         description="Read the results a run wrote and write, under RESULTS_DIR/report/: the "
                                     "main table (methods x dataset/IPC, mean ± std, best in bold, † where not "
                                     "significantly different from the best), the cross-architecture, "
                                     "fairness (own vs common protocol), claims (differences between methods "
                                     "beside the published ones), preprocessing (what ZCA adds), whitening (one "
                                     "method on the two ZCA spaces), robustness, "
                                     "budget, NAS and cost tables as Markdown, LaTeX (booktabs) and CSV; plots as "
                                     "PNG and PDF; "
                                     "and index.html showing them together. Missing inputs are listed, not "
                                     "fatal.",
                         epilog=REPORT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    rep.add_argument("results", nargs="+", metavar="RESULTS_DIR",
                     help="results folder(s) written by 'atombench run'; several are merged into one report")
    rep.add_argument("--output", help="the report folder (default RESULTS_DIR/report; required with several "
                                      "folders)")
    rep.add_argument("--where", action="append", default=[], metavar="COLUMN=V1[,V2]",
                     help="keep only rows whose COLUMN is one of the values (COLUMN!=V drops them); repeatable")
    rep.add_argument("--rows", type=_csv_list, metavar="M1,M2",
                     help="the methods (distiller labels) shown, in this order (default: all, coresets first)")
    rep.add_argument("--columns", type=_csv_list, metavar="D[:IPC],...",
                     help="the dataset / IPC columns shown, e.g. cifar10 or cifar10:1,cifar10:10 (default: all)")
    rep.add_argument("--model", help="the evaluation model of the main table (default: the suite's first)")
    rep.add_argument("--metric", default="accuracy",
                     help="the results.csv column tabulated (default accuracy; e.g. top5_accuracy)")
    rep.add_argument("--precision", type=int, default=1, help="decimals shown (default 1, as the papers)")
    rep.add_argument("--over", choices=["auto", "seeds", "models"], default="auto",
                     help="the samples of mean ± std: one per seed (synthetic set) or one per trained model; "
                          "auto: seeds when every cell has at least 2, else models. The main tables' † test is over "
                          "synthetic sets whatever this says; the claims, preprocessing and whitening tables use "
                          "seeds unless models is asked for")
    rep.add_argument("--alpha", type=float, default=0.05,
                     help="significance level of the Welch t-test against the best (default 0.05)")
    rep.add_argument("--claims", type=_csv_list, metavar="A-B,...",
                     help="the pairs of the claims table (A − B measured beside published, Welch's test, a "
                          "verdict), distiller labels, e.g. datadam-dm,atom-datadam (default: every pair of "
                          "distilling methods)")
    rep.add_argument("--published", choices=["verified", "all", "none"], default="verified",
                     help="published rows beside ours: numbers read in the papers (default), also those "
                          "recalled and unverified (all), or none")
    rep.add_argument("--no-plots", action="store_true", help="tables and page only")
    rep.add_argument("--no-images", action="store_true", help="no synthetic-image grids (they reload datasets)")
    rep.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    ev = sub.add_parser("evaluate", help="evaluate one synthetic set from a file, without a suite file",
                        description="Evaluate one synthetic set made elsewhere (DC/DSA/DM res_*.pt, MTT images_*.pt, "
                                    "DataDAM, .pt/.npz/safetensors, a folder of class folders of images) or "
                                    "exported by 'atombench export': a one-set suite of the 'files' distiller, run "
                                    "as 'atombench run' runs a suite (results folder, results.csv, report). The "
                                    "file is checked first (shape, classes, images per class, pixel space): bad "
                                    "input exits with code 2 and writes nothing.",
                        epilog=EVALUATE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ev.add_argument("set_file", metavar="SET_FILE", help="the set's file (or image folder)")
    ev.add_argument("--dataset", required=True, help="the dataset it was made from (a registered name)")
    ev.add_argument("--dataset-option", action="append", default=[], metavar="KEY=VALUE",
                    help="a dataset option (root=~/data, size=16); repeatable")
    ev.add_argument("--zca", choices=["auto", "none", "unit_interval", "normalised"], default="auto",
                    help="whiten the dataset (auto: as an exported ZCA set records, else none)")
    ev.add_argument("--models", type=_csv_list, default=["convnet"], metavar="M1,M2",
                    help="evaluation models, e.g. convnet,timm:resnet18 (default convnet)")
    ev.add_argument("--space", choices=["auto", "pixels", "normalised", "zca"], default="auto",
                    help="the images' space (auto: what an atombench export or a results folder's set file "
                         "records; other files must say; zca: give the whitening with --zca unless the file "
                         "records it)")
    ev.add_argument("--format", dest="fmt", default="auto",
                    choices=["auto", "dc", "datadam", "mtt", "tensor", "npz", "safetensors", "folder"],
                    help="the file's layout (default: from its name and content)")
    ev.add_argument("--method", help="the method that made it (a distiller name brings its own protocol)")
    ev.add_argument("--label", help="the row name in the tables (default: the method, else the file name)")
    ev.add_argument("--ipc", type=int, help="images per class (default: from the file)")
    ev.add_argument("--seed", type=int, default=0, help="the suite seed (selects the experiment of a res_*.pt)")
    ev.add_argument("--set-option", action="append", default=[], metavar="KEY=VALUE",
                    help="an option of the set's reading (the files distiller's: labels=class_major for a file "
                         "of images in class order, check_space=false, entry=N of a res_*.pt, lr=...); repeatable")
    ev.add_argument("--eval", action="append", default=[], metavar="KEY=VALUE",
                    help="an eval: option of a suite (epochs=300, models_per_set=5, augment=dsa); repeatable")
    ev.add_argument("--device", choices=["auto", "cpu", "cuda"], help="as for run")
    ev.add_argument("--workers", type=_workers, help="as for run")
    ev.add_argument("--output", help="the results folder (default results/evaluate_<label>_<dataset>_<file name>_"
                                     "<the first 8 characters of the set's sha256>)")
    ev.add_argument("--force", action="store_true", help="recompute what is done")
    ev.add_argument("--quiet", action="store_true", help="no progress bars")
    ev.add_argument("--no-report", action="store_true", help="skip the report")
    ev.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    ex = sub.add_parser("export", help="write every synthetic set of a results folder as pt, npz or png",
                        description="Write each synthetic set of RESULTS_DIR (final sets and snapshots) under "
                                    "--output as pt (tensors, torch.load weights_only), npz or png (one 8-bit "
                                    "image per synthetic image, one folder per class), with manifest.json: method "
                                    "and options, dataset and options, pixel space with the mean/std or ZCA that "
                                    "undo it, IPC, seed, key, versions. pt and npz re-import bit for bit with the "
                                    "'files' distiller or 'atombench evaluate'.")
    ex.add_argument("results", metavar="RESULTS_DIR", help="a results folder written by 'atombench run'")
    ex.add_argument("--format", dest="fmt", choices=["pt", "npz", "png"], default="pt", help="default pt")
    ex.add_argument("--output", required=True, help="the folder to write (not inside RESULTS_DIR)")
    ex.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return p


EVALUATE_EPILOG = textwrap.dedent("""\
    examples:
      atombench evaluate exported/sets/dm/fashion_mnist/ipc1_seed0.pt --dataset fashion_mnist --models convnet
      atombench evaluate res_DM_CIFAR10_ConvNet_10ipc.pt --dataset cifar10 --space normalised --method dm \\
          --dataset-option root=~/data --models convnet,timm:resnet18 --eval epochs=1000
      atombench evaluate logged_files/CIFAR10/run/images_5000.pt --dataset cifar10 --space zca --zca unit_interval \\
          --method mtt --eval protocol=paper
    """)


def _csv_list(text: str) -> list[str]:
    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list, e.g. random,dm,atom")
    return items


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
    from .runner import load_checked

    suite, _ = load_checked(args.suite)
    print(f"{args.suite}: ok ({len(suite.datasets)} dataset(s), {len(suite.distillers)} distiller(s), "
          f"{len(suite.ipc)} IPC(s), {len(suite.models)} model(s), {len(suite.seed_list)} seed(s))")
    return 0


def _check_output(output: str | None, what: str = "a results folder",
                  default: str | None = "the suite's own (default results/<suite name>)") -> str | None:
    """``--output`` with ``~`` expanded (a quoted ``'~/x'`` reaches us as written). ``--output ''`` is a mistake (an
    unset variable in a script), not the working directory, and an existing file is not a folder: refuse them.
    ``default``: what leaving ``--output`` out gives (None: it is required)."""
    import os

    from .data.base import expand
    from .errors import UsageError

    if output is None:
        return None
    if not output.strip():
        fix = f"leave --output out for {default}, or pass '.' for this folder" if default else \
            "pass '.' for this folder"
        raise UsageError(f"--output must name {what}, got an empty path; {fix}")
    output = str(expand(output, "--output"))  # (~user of no such user: one line)
    if os.path.exists(output) and not os.path.isdir(output):
        raise UsageError(f"--output {output} is a file, not a folder; pass the path of {what}")
    return output


def _cmd_plan(args: argparse.Namespace) -> int:
    from .runner import plan_suite

    args.output = _check_output(args.output)
    print(plan_suite(args.suite, workers=args.workers, device=args.device, output=args.output, force=args.force,
                     distill=not getattr(args, "no_distill", False), only=getattr(args, "only", None),
                     costs_from=getattr(args, "costs_from", None)))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from .runner import run_suite

    if args.dry_run:
        return _cmd_plan(args)
    args.output = _check_output(args.output)
    report = run_suite(args.suite, force=args.force, workers=args.workers, device=args.device,
                       output=args.output, progress=not args.quiet, distill=not args.no_distill, only=args.only)
    from .store import ResultsStore

    print(ResultsStore(report.root).summary_md.read_text(), end="")
    print(f"results: {report.root / 'results.csv'}")
    if not args.no_report:
        _report_after_run(report.root)
    if report.failed:
        print(f"error: {report.failed} job(s) failed; their reasons are in the 'error' column of "
              f"{report.root / 'results.csv'}", file=sys.stderr)
        return 3
    return 0


def _report_after_run(root) -> None:
    """The report of a finished run; its failure is a warning: the run's results and exit code stand."""
    from .report import build_report

    try:
        result = build_report(root)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - the results are safe whatever happens here
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"warning: the report could not be written ({type(exc).__name__}: {reason}); the results are "
              f"kept: run 'atombench report {root}' to try again", file=sys.stderr)
        return
    print(f"report: {result.index}")


def _cmd_report(args: argparse.Namespace) -> int:
    from .report import ReportOptions, build_report

    args.output = _check_output(args.output, "the report folder", "RESULTS_DIR/report")
    opts = ReportOptions(metric=args.metric, precision=args.precision, model=args.model, rows=args.rows,
                         columns=args.columns, unit=args.over, alpha=args.alpha, output=args.output,
                         where=args.where, published=args.published, plots=not args.no_plots,
                         images=not args.no_images, claims=args.claims)
    result = build_report(args.results, opts)
    for note in result.notes:
        print(f"note: {note}")
    print(f"{len(result.tables)} table(s) in {result.folder / 'tables'}, {len(result.plots)} plot(s) in "
          f"{result.folder / 'plots'}")
    print(f"report: {result.index}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .errors import AtombenchError
    from .export import evaluate_suite, run_evaluate
    from .store import ResultsStore

    args.output = _check_output(args.output, default="the default (results/evaluate_...)")
    try:
        doc = evaluate_suite(args.set_file, args.dataset, args.models, dataset_options=args.dataset_option,
                             zca=args.zca, space=args.space, fmt=args.fmt, method=args.method, label=args.label,
                             ipc=args.ipc, seed=args.seed, eval_options=args.eval, device=args.device,
                             output=args.output, workers=args.workers, set_options=args.set_option)
        report = run_evaluate(doc, force=args.force, progress=not args.quiet)
    except AtombenchError as err:  # the suite evaluate wrote names suite keys: say the command's flags instead
        raise _as_flags(err) from err
    print(ResultsStore(report.root).summary_md.read_text(), end="")
    print(f"results: {report.root / 'results.csv'}")
    if not args.no_report:
        _report_after_run(report.root)
    if report.failed:
        print(f"error: {report.failed} job(s) failed; their reasons are in the 'error' column of "
              f"{report.root / 'results.csv'}", file=sys.stderr)
        return 3
    return 0


#: how a message about the suite ``atombench evaluate`` writes reads in the command's own terms
_EVALUATE_FLAGS = (
    ("atombench evaluate: eval: ", "atombench evaluate: --eval: "),
    ("eval.soft_labels: distiller, but", "--eval soft_labels=distiller, but"),
    ("set labels: soft or both, or remove them", "pass --eval labels=soft (or both), or leave them out"),
    ("distillers[0].options: ", ""),
    ("set labels: class_major", "pass --set-option labels=class_major"),
    ("check_space: false skips this check", "--set-option check_space=false skips this check"),
    ("set `download: true` in the suite's dataset options", "pass --dataset-option download=true"),
    ("with 'output:' in the suite", "with --output"),
    ("datasets[0].options: ", "--dataset-option: "),
    ("datasets[0]: ", "--dataset: "),
    ("set format: ", "pass --format "),
)


def _as_flags(err):
    """``err`` (an :class:`~atombench.errors.AtombenchError` of ``atombench evaluate``) with its suite keys
    written as the command's flags, each line naming the command (as argparse's errors do), its exit code kept."""
    from .errors import AtombenchError

    lead = "atombench evaluate: "
    text = "\n".join(line if line.startswith(lead) else lead + line for line in str(err).splitlines())
    for suite_words, flags in _EVALUATE_FLAGS:
        text = text.replace(suite_words, flags)
    text = re.sub(r"^atombench evaluate: eval\.(\w+): ", r"atombench evaluate: --eval \1: ", text, flags=re.M)
    text = re.sub(r"use soft_labels: teacher, or leave \S+ out of this suite", "pass --eval soft_labels=teacher", text)
    text = re.sub(r"declare space: (\w+)", r"pass --space \1", text)
    out = AtombenchError(text)
    out.exit_code = err.exit_code
    return out


def _cmd_export(args: argparse.Namespace) -> int:
    from .export import export_results

    args.output = _check_output(args.output, "the folder to write", default=None)
    export_results(args.results, args.fmt, args.output)
    return 0


def _misspelt_choice(parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
    """One line for an unknown command or choice (``atombench runn``, ``atombench list distiller``) with the
    closest valid name, instead of argparse's usage block; None when argparse should handle ``argv`` itself."""
    from .errors import suggest

    if any(tok in ("-h", "--help", "--version") for tok in argv):
        return None

    def positionals(p: argparse.ArgumentParser, tokens: list[str]) -> list[tuple[int, str]]:
        out, skip = [], False
        for k, tok in enumerate(tokens):
            if skip:
                skip = False
            elif tok == "--":
                return out + [(j, t) for j, t in enumerate(tokens[k + 1:], k + 1)]
            elif tok.startswith("-") and tok != "-":
                action = p._option_string_actions.get(tok)  # an option that takes a value: skip the value
                skip = action is not None and action.nargs != 0
            else:
                out.append((k, tok))
        return out

    sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    top = positionals(parser, argv)
    if sub is None or not top:
        return None
    k, command = top[0]
    if command not in sub.choices:
        return (f"unknown command '{command}'{suggest(command, sub.choices)}; the commands are "
                f"{', '.join(sub.choices)} (atombench --help)")
    subparser = sub.choices[command]
    wanted = [a for a in subparser._actions if not a.option_strings]
    for action, (_, tok) in zip(wanted, positionals(subparser, argv[k + 1:])):
        if action.nargs not in (None, "?"):
            break  # a list of values: argparse knows best
        if action.choices is not None and tok not in action.choices:
            return (f"{command}: unknown {action.dest} '{tok}'{suggest(tok, action.choices)}; choose from "
                    f"{', '.join(map(str, action.choices))}")
    return None


def main(argv: list[str] | None = None) -> int:
    wrong = _misspelt_choice(_parser(), list(sys.argv[1:] if argv is None else argv))
    if wrong:  # a misspelt command or choice: one line with a suggestion, exit 2 (argparse's code for bad usage)
        print(f"error: {wrong}", file=sys.stderr)
        return 2
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 2
    from .errors import AtombenchError

    try:
        return {"run": _cmd_run, "validate": _cmd_validate, "list": _cmd_list,
                "report": _cmd_report, "plan": _cmd_plan, "evaluate": _cmd_evaluate,
                "export": _cmd_export}[args.command](args)
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
