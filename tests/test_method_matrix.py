"""Every method on every kind of classifier: each explains a batch (class 1 where the method is
class-conditioned, the decision otherwise), or refuses in one line.

`.venv/bin/python -m pytest -q -s tests/test_method_matrix.py` prints the table of classifier
kinds x methods (✓ or the one-line reason) that recipes/README.md shows.
"""

import pytest
import torch
from captum.attr import IntegratedGradients, Saliency
from speechbrain.lobes.models.dual_path import Decoder, Dual_Path_Model, Encoder, SBTransformerBlock
from test_adapters import ECAPA, EXTRACTORS, HF_MODELS, speechbrain_folder
from test_wrap import LAYERS, UserNet, mel_features

from interpreters.audio import FrontEnd
from interpreters.errors import InterpreterError, first_line
from interpreters.explainers.attribution import CaptumAttribution, GradCAM
from interpreters.explainers.l2i import L2I, ActivationDecoder, AttentionClassifier
from interpreters.explainers.lmac import LMAC, ConditionedMaskDecoder
from interpreters.explainers.lmac_td import LMACTD, RepresentationDecoder, SepformerInterpreter
from interpreters.explainers.lrp import LRP, make_composite
from interpreters.explainers.nmf import NMFDictionary
from interpreters.models.loading import export_classifier, load_classifier
from interpreters.models.spectrogram_cnn import SpectrogramCNN
from interpreters.models.speechbrain_inference import SpeechBrainClassifier
from interpreters.models.transformers_audio import TransformersClassifier
from interpreters.models.waveform_cnn import WaveformCNN
from interpreters.models.wrap import wrap_classifier

RATE = 16000
FRONT_END = FrontEnd(RATE, n_fft=512, hop_length=256)
LABELS = ["siren", "dog", "bird"]  # the adapters' tiny models' classes


def sepformer(hidden_channels):
    block = dict(num_layers=1, d_model=32, nhead=2, d_ffn=32, dropout=0, norm_before=True)
    masknet = Dual_Path_Model(
        32, 32, SBTransformerBlock(**block), SBTransformerBlock(**block), num_layers=1, K=50
    )
    representation = RepresentationDecoder(hidden_channels, 32, layers=[-1])
    return SepformerInterpreter(
        Encoder(16, 32), representation, masknet, Decoder(32, 1, 16, stride=8, bias=False)
    )


METHODS = {
    "L-MAC": lambda c: LMAC(c, FRONT_END, ConditionedMaskDecoder(c.hidden_channels, channels=4)),
    "L2I": lambda c: L2I(
        c,
        FRONT_END,
        ActivationDecoder(c.hidden_channels, 8, layers=[-1], channels=8, bands=4),
        AttentionClassifier(8, len(c.labels)),
        NMFDictionary(FRONT_END.n_freqs, 8),
    ),
    "LMAC-TD": lambda c: LMACTD(c, FRONT_END, sepformer(c.hidden_channels)),
    "Saliency": lambda c: CaptumAttribution(c, FRONT_END, Saliency, {"abs": True}),
    "IG": lambda c: CaptumAttribution(c, FRONT_END, IntegratedGradients, {"n_steps": 2}),
    "GradCAM": lambda c: GradCAM(c, FRONT_END, "hidden.-1"),
    "LRP": lambda c: LRP(c, FRONT_END, make_composite("epsilon_plus")),
}


@pytest.fixture(scope="module")
def classifiers(tmp_path_factory):
    """One small random classifier of each kind a user can bring (3 classes each)."""
    base = tmp_path_factory.mktemp("kinds")
    torch.manual_seed(0)
    found = {
        "this project's spectrogram CNN": SpectrogramCNN(LABELS, channels=[4, 8, 8]),
        "this project's waveform CNN": WaveformCNN(LABELS, first_kernel=16, channels=[4, 4, 8]),
    }
    for name in ("ast", "wav2vec2", "whisper"):
        HF_MODELS[name]().save_pretrained(base / name)
        EXTRACTORS[name]().save_pretrained(base / name)
        found[f"transformers {name}"] = TransformersClassifier(str(base / name))
    ecapa = speechbrain_folder(base / "ecapa", ECAPA)
    found["SpeechBrain ECAPA"] = SpeechBrainClassifier(str(ecapa), savedir=base / "ecapa_in")
    torch.manual_seed(0)
    wrapped = wrap_classifier(
        UserNet(3), LABELS, RATE, mel_features(), LAYERS, frequency_scale="mel"
    )
    found["wrapped nn.Module"] = wrapped
    export_classifier(wrapped, base / "torchscript")
    found["TorchScript (exported)"] = load_classifier(str(base / "torchscript"), base / "ts_in")
    return {name: c.eval().requires_grad_(False) for name, c in found.items()}


def outcome(method: str, classifier) -> str:
    """✓ when the method explains a batch on this classifier, else its one-line refusal."""
    wavs = 0.1 * torch.randn(2, RATE // 2, generator=torch.Generator().manual_seed(0))
    try:
        explainer = METHODS[method](classifier)
        explanation = explainer.explain(wavs, target=1 if explainer.conditioned else None)
    except InterpreterError as err:
        return first_line(err)
    grid = (2, FRONT_END.n_frames(RATE // 2), FRONT_END.n_freqs)
    mask = explanation.mask
    assert torch.isfinite(mask).all() and explanation.interpretation.shape == wavs.shape
    assert mask.shape == grid or method == "LMAC-TD"
    return "✓"


def test_every_method_on_every_classifier_kind(classifiers):
    table = {name: {m: outcome(m, c) for m in METHODS} for name, c in classifiers.items()}
    header = "| classifier | " + " | ".join(METHODS) + " |"
    lines = [header, "|---" * (len(METHODS) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(row.values()) + " |" for name, row in table.items()]
    print("\n" + "\n".join(lines))
    refused = {(n, m): v for n, row in table.items() for m, v in row.items() if v != "✓"}
    # Only LRP may refuse: where zennit has no rule, nothing to attach to, or a wiring its
    # canonizer does not fit.
    assert all(method == "LRP" for _, method in refused), refused
    for (name, _), reason in refused.items():
        assert reason.startswith("LRP: "), (name, reason)
    assert table["this project's spectrogram CNN"]["LRP"] == "✓"
