#!/usr/bin/env python3
"""An interactive explainer in the browser: upload or pick a clip, explain it with one or several
pretrained interpreters side by side, listen, look, change the mask strength, download.

python recipes/app.py --source pretrained/lmac_synth --examples results/lmac_spec_cnn_synth
python recipes/app.py --source A --source B --examples clips/ --screenshot docs/app.png
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import interpreters  # noqa: E402,F401  (installs the torchaudio compat hook first)
from interpreters.errors import InterpreterError, OneLineParser, first_line  # noqa: E402


def parse(argv: list[str]) -> argparse.Namespace:
    """The command line; usage errors exit 2 with one line, before anything heavy is imported."""
    parser = OneLineParser(prog="recipes/app.py", description=__doc__)
    parser.add_argument(
        "--source",
        action="append",
        required=True,
        help="pretrained folder or hub id (recipes/export.py); repeat to compare side by side",
    )
    parser.add_argument(
        "--examples",
        nargs="+",
        action="extend",
        default=[],
        metavar="DIR_OR_FILE",
        help="clips offered in the page; in a run folder only its examples' *_input.wav",
    )
    parser.add_argument("--savedir", default=None, help="where fetched files are kept")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on")
    parser.add_argument(
        "--port", type=int, default=None, help="port (default: first free from 7860; 0: any)"
    )
    parser.add_argument(
        "--screenshot",
        default=None,
        metavar="PATH",
        help="explain the first example in headless chromium, save a full-page PNG, exit",
    )
    args = parser.parse_args(argv)
    if args.port is not None and not 0 <= args.port <= 65535:
        parser.error(f"argument --port: {args.port} is not a port (0 to 65535)")
    if args.screenshot and not Path(args.screenshot).suffix.lower() == ".png":
        parser.error(f"argument --screenshot: {args.screenshot} must end in .png")
    return args


def main(argv: list[str]) -> int:
    """Load every source, then serve the page (or take the screenshot); one line, status 2,
    for any problem found before launching."""
    args = parse(argv)
    from interpreters.room.app import (  # torch & gradio: after --help and usage
        ExplainerApp,
        build_blocks,
        find_examples,
        launch,
        load_interpreters,
        screenshot,
    )

    try:
        examples = find_examples(args.examples, args.source)
        if args.screenshot and not examples:
            raise InterpreterError("--screenshot needs a clip to explain; give --examples")
        app = ExplainerApp(load_interpreters(args.source, args.savedir, args.device), examples)
    except InterpreterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    blocks = build_blocks(app)
    try:
        url = launch(blocks, app, args.host, args.port)
        if args.screenshot:
            first = next(iter(examples))
            print(f"saved {screenshot(url, args.screenshot, first, len(app.interpreters))}")
            return 0
        print(f"explainer running at {url} (Ctrl+C stops it)")
        blocks.block_thread()
    except (InterpreterError, OSError) as err:  # OSError: the port is taken
        print(f"error: {first_line(err)}", file=sys.stderr)
        return 2
    finally:
        blocks.close()
        app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
