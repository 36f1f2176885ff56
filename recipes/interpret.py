#!/usr/bin/env python3
"""Explain audio files with a pretrained interpreter and write a listenable HTML report.

python recipes/interpret.py --source pretrained/lmac_synth clip.wav more/ --out interpretations/
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import interpreters  # noqa: E402,F401  (installs the torchaudio compat hook first)
from interpreters.errors import InterpreterError  # noqa: E402


def main(argv: list[str]) -> int:
    """Parse arguments, explain every input; bad files are listed, the others still done."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("inputs", nargs="+", help="audio files or folders")
    parser.add_argument("--source", required=True, help="pretrained folder or hub id")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--target", default=None, help="class name or index to explain (default: the decision)"
    )
    parser.add_argument("--prompt", default=None, help="text prompt (zero-shot interpreters)")
    parser.add_argument("--savedir", default=None, help="where fetched files are kept")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--figures",
        action="store_true",
        help="full figures with axes and colour bars (about 0.4 s a file), not quick panels",
    )
    parser.add_argument(
        "--own_rate",
        action="store_true",
        help="write the sounds at each input's own rate (default: the classifier's rate)",
    )
    parser.add_argument(
        "--above_nyquist",
        choices=["keep", "remove"],
        default="keep",
        help="with --own_rate: the band the classifier never heard, kept in the interpretation "
        "or moved to the residual",
    )
    args = parser.parse_args(argv)
    from interpreters.inference.cli import interpret_inputs  # torch & co: after --help and usage

    try:
        done, failed, notes = interpret_inputs(
            args.source,
            args.inputs,
            args.out,
            args.target or args.prompt,
            args.savedir,
            args.device,
            args.figures,
            args.own_rate,
            args.above_nyquist == "keep",
        )
    except InterpreterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"{done} file(s) explained; report: {Path(args.out) / 'report.html'}")
    for _path, reason in failed:
        print(f"skipped: {reason}", file=sys.stderr)
    return 0 if done else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
