"""Fine-tuning: start an interpreter from a pretrained one (``--init_from=SOURCE``).

Every parameter whose name and shape fit is copied from the source's module checkpoints; the
rest (say, projections sized for another classifier's hidden widths, or a head sized for
another class count) keep their fresh initialisation. What happened to each tensor is logged
and written to ``<output_folder>/init_from.json`` so a user can see what transferred.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from interpreters.errors import InterpreterError
from interpreters.sources import fetch_files, is_local

logger = logging.getLogger(__name__)

REPORT = "init_from.json"


def transfer_state(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> dict[str, list]:
    """Copy the tensors of ``state`` that fit ``module`` by name and shape; what was loaded,
    what was re-initialised (shape differs or absent in the source), what the source had
    that this module does not."""
    own = module.state_dict()
    fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    module.load_state_dict({**own, **fits})
    return {
        "loaded": sorted(fits),
        "reinitialised": sorted(
            f"{k} {list(own[k].shape)} (source {list(state[k].shape)})" if k in state else k
            for k in own
            if k not in fits
        ),
        "unused": sorted(k for k in state if k not in own),
    }


def source_modules(source: str, names: list[str]) -> list[str]:
    """The module checkpoints a source holds: all asked for on the hub, those present locally."""
    if not is_local(source):
        return names
    folder = Path(source).expanduser()
    if not (folder / "hyperparams.yaml").is_file():
        raise InterpreterError(
            f"init_from {source} is not an exported interpreter (no hyperparams.yaml); "
            "export a run with recipes/export.py and pass its folder"
        )
    return [name for name in names if (folder / f"{name}.ckpt").is_file()]


def initialise_from(modules: dict, source: str, savedir: str | Path) -> dict[str, dict]:
    """Load what transfers from pretrained interpreter ``source`` into ``modules``; the report
    per module (a module the source lacks is entirely re-initialised)."""
    names = list(modules)
    present = source_modules(str(source), names)
    paths = fetch_files(str(source), present, Path(savedir), key="init_from")
    report = {}
    for name in names:
        module = modules[name]
        if name not in present:
            report[name] = {
                "loaded": [],
                "reinitialised": sorted(module.state_dict()),
                "unused": [],
            }
            continue
        try:
            state = torch.load(paths[name], map_location="cpu", weights_only=True)
        except Exception as err:
            raise InterpreterError(
                f"init_from {source}: {name}.ckpt cannot be read ({type(err).__name__}); "
                "re-export the interpreter"
            ) from None
        report[name] = transfer_state(module, state)
    loaded = sum(len(r["loaded"]) for r in report.values())
    if loaded == 0:
        raise InterpreterError(
            f"init_from {source}: no parameter fits this recipe's modules {names}; "
            "is it an interpreter of the same method?"
        )
    return report


def write_report(report: dict[str, dict], source: str, output_folder: str | Path) -> Path:
    """Log a one-line summary per module and keep the full report in the run folder."""
    for name, parts in report.items():
        logger.info(
            "init_from %s, module %s: %d tensors loaded, %d re-initialised%s",
            source,
            name,
            len(parts["loaded"]),
            len(parts["reinitialised"]),
            f" ({', '.join(parts['reinitialised'])})" if parts["reinitialised"] else "",
        )
    path = Path(output_folder) / REPORT
    path.write_text(json.dumps({"source": str(source), "modules": report}, indent=2) + "\n")
    return path
