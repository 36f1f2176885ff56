#!/usr/bin/env python3
"""Listening tests of explanations: build a blind test from runs, serve it in the browser,
analyse the answers.

python recipes/listening_test.py build --runs results/lmac_spec_cnn_synth \\
    results/l2i_spec_cnn_synth --set mixtures --n 20 --out listening/mix [--mode ab]
python recipes/listening_test.py serve listening/mix [--port 7860] [--listener ana]
python recipes/listening_test.py serve listening/mix --screenshot docs/listening_test.png
python recipes/listening_test.py analyse listening/mix [--out FOLDER]
"""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here needs the hub

import interpreters  # noqa: E402,F401  (installs the torchaudio compat hook first)
from interpreters.errors import InterpreterError, OneLineParser, first_line  # noqa: E402


def parse(argv: list[str]) -> argparse.Namespace:
    """The command line with its three sub-commands; usage errors exit 2 with one line."""
    parser = OneLineParser(
        prog="recipes/listening_test.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    build = commands.add_parser("build", help="draw clips from runs and write a blind test")
    build.add_argument("--runs", nargs="+", required=True, metavar="RUN", help="run folders")
    build.add_argument("--set", default="mixtures", help="evaluation set (default: mixtures)")
    build.add_argument("--n", type=int, default=20, help="clips to draw (default: 20)")
    build.add_argument("--out", required=True, help="new (or empty) test folder")
    build.add_argument("--mode", choices=("mushra", "ab"), default="mushra")
    build.add_argument("--seed", type=int, default=0, help="draw and order seed (default: 0)")
    build.add_argument("--names", nargs="+", default=None, help="method names (default: folders)")
    build.add_argument(
        "--data_folder",
        default=None,
        help="folder of the set's manifest, for runs that record none (evaluate-only runs)",
    )
    serve = commands.add_parser("serve", help="run the test in the browser")
    serve.add_argument("test", help="test folder made by build")
    serve.add_argument("--host", default="127.0.0.1", help="address to serve on")
    serve.add_argument("--port", type=int, default=None, help="port (default: any free one)")
    serve.add_argument("--listener", default=None, help="pre-fill the listener's name")
    serve.add_argument(
        "--screenshot",
        default=None,
        metavar="PATH",
        help="rate the first trial of a copy in headless chromium, save a PNG, exit",
    )
    analyse = commands.add_parser("analyse", help="statistics, table and plot of the answers")
    analyse.add_argument("test", help="test folder made by build")
    analyse.add_argument("--out", default=None, help="output folder (default: <test>/analysis)")
    args = parser.parse_args(argv)
    if args.command == "build" and args.n < 1:
        build.error(f"argument --n: {args.n} must be at least 1")
    if args.command == "serve":
        if args.port is not None and not 0 < args.port <= 65535:
            serve.error(f"argument --port: {args.port} is not a port (1 to 65535)")
        if args.screenshot and Path(args.screenshot).suffix.lower() != ".png":
            serve.error(f"argument --screenshot: {args.screenshot} must end in .png")
    return args


def build(args: argparse.Namespace) -> str:
    """The build sub-command; what it wrote."""
    from interpreters.room.listening.build import build_test

    path = build_test(
        args.runs, args.out, args.set, args.n, args.mode, args.seed, args.names, args.data_folder
    )
    return f"wrote {path} ({args.mode}, {args.n} clips); the key is {Path(args.out) / 'key.json'}"


def serve(args: argparse.Namespace) -> str:
    """The serve sub-command: the page until Ctrl+C, or a screenshot."""
    if args.screenshot:
        from interpreters.room.listening.screenshot import take_screenshot

        return f"saved {take_screenshot(args.test, args.screenshot)}"
    from interpreters.room.listening.serve import launch

    launch(args.test, args.port, args.listener, host=args.host)
    return "stopped"


def analyse(args: argparse.Namespace) -> str:
    """The analyse sub-command; the files it wrote."""
    from interpreters.room.listening.analyse import analyse_test

    results = analyse_test(args.test, args.out)
    excluded = results.get("excluded") or []
    note = f"; excluded listeners: {', '.join(excluded)}" if excluded else ""
    return f"wrote {', '.join(results['files'])}{note}"


def main(argv: list[str]) -> int:
    """Run one sub-command; user-fixable problems print one line and exit with status 2."""
    args = parse(argv)
    try:
        print({"build": build, "serve": serve, "analyse": analyse}[args.command](args))
    except (InterpreterError, OSError) as err:  # OSError: a port taken, a folder unwritable
        print(f"error: {first_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
