"""Exports and runs made before explainers were split from Brains: their yaml has no
``explainer`` key, so the explainer is rebuilt from the keys such yaml always had."""

from __future__ import annotations

from interpreters.errors import InterpreterError
from interpreters.explainers.base import Explainer


def explainer_of(hparams: dict, source: str = "") -> Explainer:
    """The yaml's ``explainer``; for yaml of earlier versions, the one its Brain implied."""
    if "explainer" in hparams:
        return hparams["explainer"]
    brain = getattr(hparams.get("brain_class"), "func", hparams.get("brain_class"))
    build = LEGACY_BUILDERS.get(getattr(brain, "__name__", ""))
    if build is None:
        raise InterpreterError(
            f"{source}: its yaml defines no explainer (made by an earlier version for a method "
            "that cannot be rebuilt); re-export the run with recipes/export.py"
        )
    return build(hparams)


def _lmac(hp: dict) -> Explainer:
    from interpreters.explainers.lmac import UnconditionedLMAC

    name = hp.get("method_name", "")
    return UnconditionedLMAC(hp["classifier"], hp["front_end"], hp["decoder"], name)


def _l2i(hp: dict) -> Explainer:
    from interpreters.explainers.l2i import L2I

    return L2I(
        hp["classifier"],
        hp["front_end"],
        hp["psi"],
        hp["theta"],
        hp["dictionary"],
        hp["relevance_threshold"],
        hp["top_k"],
        hp["n_listen_components"],
        hp.get("method_name", ""),
    )


def _lmac_td(hp: dict) -> Explainer:
    from interpreters.explainers.lmac_td import LMACTD

    return LMACTD(hp["classifier"], hp["front_end"], hp["interpreter"], hp.get("method_name", ""))


def _lmac_zs(hp: dict) -> Explainer:
    from interpreters.explainers.lmac_zs import LMACZS

    return LMACZS(
        hp["classifier"],
        hp["front_end"],
        hp["decoder"],
        hp.get("gradcam_baseline", True),
        hp.get("method_name", ""),
    )


LEGACY_BUILDERS = {
    "LMACBrain": _lmac,
    "L2IBrain": _l2i,
    "LMACTDBrain": _lmac_td,
    "LMACZSBrain": _lmac_zs,
}
