#!/usr/bin/env python3
"""Export a trained run as a pretrained folder (uploadable to the hub as is).

python recipes/export.py --run results/lmac_spec_cnn_synth --out pretrained/lmac_synth
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import interpreters  # noqa: E402,F401  (installs the torchaudio compat hook first)
from interpreters.errors import InterpreterError  # noqa: E402
from interpreters.inference import export_interpreter  # noqa: E402


def main(argv: list[str]) -> int:
    """Parse arguments and export; user-fixable problems are one line, status 2."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", required=True, help="output_folder of a trained run")
    parser.add_argument("--out", required=True, help="folder to write")
    args = parser.parse_args(argv)
    try:
        out = export_interpreter(args.run, args.out)
    except InterpreterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"exported {args.run} to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
