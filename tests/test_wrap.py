"""A user's own module explained: wrap_classifier's declared layouts and their checks, TorchScript
modules, the TorchScript export that reloads without the user's code, and the recipes on it."""

import json
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
import torchaudio
from conftest import ROOT, TINY_DATA, run_recipe

from interpreters.audio import FrontEnd
from interpreters.data.synth import CLASSES
from interpreters.errors import InterpreterError
from interpreters.explainers.attribution import GradCAM
from interpreters.explainers.lmac import LMAC, ConditionedMaskDecoder
from interpreters.models.loading import export_classifier, load_classifier
from interpreters.models.wrap import wrap_classifier

LABELS = list(CLASSES)
RATE = 16000


class UserNet(nn.Module):
    """What a user brings: Conv2d blocks over a (mel, time) image, global pooling, a head."""

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(4, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.ReLU(),
        )
        self.head = nn.Linear(8, n_classes)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        maps = self.body(torch.log1p(mel).unsqueeze(1))  # [B, C, mel, time]
        return self.head(maps.mean(dim=(2, 3)))


def mel_features() -> nn.Module:
    return torchaudio.transforms.MelSpectrogram(RATE, n_fft=512, hop_length=256, n_mels=32)


LAYERS = {"body.1": "CFT", "body.4": "CFT", "body.7": "CFT"}


@pytest.fixture(scope="module")
def wrapped():
    torch.manual_seed(0)
    return wrap_classifier(
        UserNet(len(LABELS)), LABELS, RATE, mel_features(), LAYERS, frequency_scale="mel"
    )


def test_hidden_maps_come_out_time_first_and_grow_with_the_input(wrapped):
    logits, hidden = wrapped.forward_with_hidden(torch.randn(2, RATE))
    assert logits.shape == (2, len(LABELS)) and wrapped.hidden_channels == [4, 8, 8]
    longer = wrapped.forward_with_hidden(torch.randn(2, 2 * RATE))[1]
    for short, long in zip(hidden, longer):
        assert short.dim() == 4 and short.shape[3] == long.shape[3]  # frequency stays
        assert long.shape[2] > short.shape[2]  # time grows
    assert hidden[0].shape[3] == 32  # the 32 mel bands, on the last axis
    assert wrapped.layer_layout("module.body.4") == "CFT"


def test_a_swapped_layout_is_refused_in_one_line():
    with pytest.raises(InterpreterError, match="'body.1'.*swaps them"):
        wrap_classifier(UserNet(len(LABELS)), LABELS, RATE, mel_features(), {"body.1": "CTF"})
    with pytest.raises(InterpreterError, match=r"body.1 has shape \(1, 4, 32, 63\).*CT .*needs 3"):
        wrap_classifier(UserNet(len(LABELS)), LABELS, RATE, mel_features(), {"body.1": "CT"})


def test_wrong_labels_layers_and_layouts_are_one_line():
    with pytest.raises(InterpreterError, match=r"logits of shape \(1, 11\).*3 labels"):
        wrap_classifier(UserNet(len(LABELS)), ["a", "b", "c"], RATE, mel_features())
    with pytest.raises(InterpreterError, match="'body.9' is not a layer.*body.4"):
        wrap_classifier(UserNet(len(LABELS)), LABELS, RATE, mel_features(), {"body.9": "CFT"})
    with pytest.raises(InterpreterError, match="'FCT' is not a known layout.*CTF ="):
        wrap_classifier(UserNet(len(LABELS)), LABELS, RATE, mel_features(), {"body.1": "FCT"})


def test_explainers_read_the_wrapped_module(wrapped):
    front_end = FrontEnd(RATE, n_fft=512, hop_length=256)
    wavs = 0.1 * torch.randn(2, RATE // 2)
    decoder = ConditionedMaskDecoder(wrapped.hidden_channels, channels=4)
    mask = LMAC(wrapped, front_end, decoder).explain(wavs).mask
    assert mask.shape == (2, front_end.n_frames(RATE // 2), front_end.n_freqs)
    by_name = GradCAM(wrapped, front_end, "module.body.4").explain(wavs, target=3)
    by_index = GradCAM(wrapped, front_end, "hidden.1").explain(wavs, target=3)
    torch.testing.assert_close(by_name.extras["relevance"], by_index.extras["relevance"])
    assert by_name.mask.shape == mask.shape and by_name.mask.max() > 0


def test_torchscript_module_with_a_hidden_callable(tmp_path):
    torch.manual_seed(0)
    net = UserNet(len(LABELS)).eval()
    scripted = torch.jit.script(net)
    with pytest.raises(InterpreterError, match="hooks cannot attach to a TorchScript module"):
        wrap_classifier(scripted, LABELS, RATE, mel_features(), {"body.1": "CFT"})

    def hidden(mel):
        return [scripted.body(torch.log1p(mel).unsqueeze(1))]

    wrapped = wrap_classifier(
        scripted, LABELS, RATE, mel_features(), hidden=hidden, hidden_layouts=["CFT"]
    )
    wavs = torch.randn(1, RATE)
    torch.testing.assert_close(wrapped(wavs), net(mel_features()(wavs)))
    assert wrapped.forward_with_hidden(wavs)[1][0].shape[1] == 8
    export_classifier(wrapped, tmp_path / "exported")  # a TorchScript module exports too
    reloaded = load_classifier(str(tmp_path / "exported"), tmp_path / "fetched")
    torch.testing.assert_close(reloaded(wavs), wrapped(wavs), atol=1e-5, rtol=1e-5)


def test_export_reloads_without_the_users_code(wrapped, tmp_path):
    export_classifier(wrapped, tmp_path / "exported")
    text = (tmp_path / "exported" / "hyperparams.yaml").read_text()
    assert "TorchScriptClassifier" in text and str(tmp_path) not in text  # no absolute paths
    wavs = torch.randn(2, 3 * RATE // 2)  # another length than the one traced
    torch.save({"wavs": wavs, "logits": wrapped(wavs)}, tmp_path / "reference.pt")
    script = (
        "import interpreters, torch, sys\n"
        "from interpreters.models.loading import load_classifier\n"
        f"ref = torch.load({str(tmp_path / 'reference.pt')!r})\n"
        f"c = load_classifier({str(tmp_path / 'exported')!r}, {str(tmp_path / 'fetched')!r})\n"
        "assert 'test_wrap' not in sys.modules\n"
        "torch.testing.assert_close(c(ref['wavs']), ref['logits'], atol=1e-5, rtol=1e-5)\n"
        "print(c.labels[0], [h.shape[1] for h in c.forward_with_hidden(ref['wavs'])[1]])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[0] == LABELS[0] and "[4, 8, 8]" in result.stdout
    reloaded = load_classifier(str(tmp_path / "exported"), tmp_path / "again")
    export_classifier(reloaded, tmp_path / "re-exported")  # an export exports again
    assert (tmp_path / "re-exported" / "classifier.pt").is_file()


def test_recipes_train_evaluate_export_and_interpret_on_it(wrapped, trained_classifier, tmp_path):
    export_classifier(wrapped, tmp_path / "mine")
    common = [
        f"--data_folder={trained_classifier['data']}",
        f"--classifier_source={tmp_path / 'mine'}",
        "--batch_size=8",
        "--n_examples=1",
        *TINY_DATA,
    ]
    run = tmp_path / "lmac"
    run_recipe(
        "train.py", "hparams/lmac.yaml", f"--output_folder={run}", "--number_of_epochs=1", *common
    )
    table = json.loads((run / "metrics.json").read_text())
    assert "SI-SDRi" in table["L-MAC · mixtures"]
    gradcam = tmp_path / "gradcam"
    result = run_recipe(
        "evaluate.py",
        "hparams/baselines.yaml",
        "--method=gradcam",
        "--gradcam_layer=hidden.-1",
        f"--output_folder={gradcam}",
        *common,
    )
    assert "GradCAM · test" in result.stdout
    run_recipe("export.py", "--run", str(run), "--out", str(tmp_path / "export"))
    from interpreters.inference import Interpreter

    interpreter = Interpreter.from_hparams(str(tmp_path / "export"), savedir=tmp_path / "fetched")
    assert interpreter.labels == LABELS
    clip = sorted((trained_classifier["data"] / "test").glob("*.wav"))[0]
    out = tmp_path / "report"
    result = run_recipe(
        "interpret.py", "--source", str(tmp_path / "export"), str(clip), "--out", str(out)
    )
    assert "1 file(s) explained" in result.stdout and (out / "report.html").is_file()


def test_lrp_names_the_layer_type_it_has_no_rule_for(wrapped):
    from interpreters.explainers.lrp import LRP, make_composite

    front_end = FrontEnd(RATE, n_fft=512, hop_length=256)
    LRP(wrapped, front_end, make_composite("epsilon_plus"))  # conv, ReLU, pooling, linear: fine
    normed = nn.Sequential(nn.Conv1d(1, 4, 9, stride=4), nn.GroupNorm(2, 4), nn.Flatten(1))
    model = nn.Sequential(normed, nn.LazyLinear(len(LABELS)))
    model(torch.zeros(1, 1, RATE))
    other = wrap_classifier(model, LABELS, RATE, features=lambda w: w.unsqueeze(1))
    with pytest.raises(InterpreterError, match="no rule for GroupNorm .layer 'module.0.1'"):
        LRP(other, front_end, make_composite("epsilon_plus"))
