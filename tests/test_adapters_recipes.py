"""The user's own classifiers through the recipes: a transformers AST and wav2vec2 folder and a
SpeechBrain EncoderClassifier folder, each through one L-MAC training epoch, one baseline,
export, Interpreter.from_hparams and recipes/interpret.py."""

import json

import pytest
import torch
from conftest import TINY_DATA, run_recipe
from test_adapters import ECAPA, WAV2VEC2, speechbrain_folder
from transformers import (
    ASTConfig,
    ASTFeatureExtractor,
    ASTForAudioClassification,
    Wav2Vec2Config,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2ForSequenceClassification,
)

from interpreters.data.synth import CLASSES
from interpreters.models.kinds import classifier_kind

LABELS = list(CLASSES)  # the synth data's classes, so the tiny data set can be used
SYNTH = {"id2label": dict(enumerate(LABELS))}


def transformers_folder(folder, name):
    """A tiny random transformers classifier of the synth classes, saved with its extractor."""
    torch.manual_seed(0)
    if name == "ast":
        config = ASTConfig(
            hidden_size=16,
            num_hidden_layers=3,
            num_attention_heads=2,
            intermediate_size=32,
            num_mel_bins=32,
            max_length=64,
            patch_size=8,
            frequency_stride=8,
            time_stride=8,
            **SYNTH,
        )
        model, extractor = (
            ASTForAudioClassification(config),
            ASTFeatureExtractor(num_mel_bins=32, max_length=64),
        )
    else:
        config = Wav2Vec2Config(**{**WAV2VEC2, "num_hidden_layers": 3, **SYNTH})
        model, extractor = Wav2Vec2ForSequenceClassification(config), Wav2Vec2FeatureExtractor()
    model.save_pretrained(folder)
    extractor.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("name", ["ast", "wav2vec2", "speechbrain"])
def test_recipes_on_a_users_own_classifier(name, trained_classifier, tmp_path):
    source = tmp_path / name
    if name == "speechbrain":
        ecapa = ECAPA.replace("out_neurons: 3", f"out_neurons: {len(LABELS)}")
        source = speechbrain_folder(source, ecapa, LABELS)
    else:
        source = transformers_folder(source, name)
    assert classifier_kind(str(source)) == (
        "speechbrain" if name == "speechbrain" else "transformers"
    )
    layers = ["--decoder_layers=[-2,-1]"] if name == "speechbrain" else []  # 2 maps by default
    common = [
        f"--data_folder={trained_classifier['data']}",
        f"--classifier_source={source}",
        "--batch_size=8",
        "--n_examples=1",
        *TINY_DATA,
    ]
    run = tmp_path / "lmac"
    train = ["hparams/lmac.yaml", f"--output_folder={run}", "--number_of_epochs=1", *layers]
    run_recipe("train.py", *train, *common)
    assert "SI-SDRi" in json.loads((run / "metrics.json").read_text())["L-MAC · mixtures"]
    result = run_recipe(
        "evaluate.py",
        "hparams/baselines.yaml",
        "--method=saliency",
        f"--output_folder={tmp_path / 'saliency'}",
        *common,
    )
    assert "Saliency · test" in result.stdout
    export = tmp_path / "export"
    run_recipe("export.py", "--run", str(run), "--out", str(export))
    assert str(tmp_path) not in (export / "classifier" / "hyperparams.yaml").read_text()
    from interpreters.inference import Interpreter

    interpreter = Interpreter.from_hparams(str(export), savedir=tmp_path / "fetched")
    assert interpreter.labels == LABELS
    clip = sorted((trained_classifier["data"] / "test").glob("*.wav"))[0]
    from interpreters.audio import load_audio

    wav = load_audio(clip, interpreter.sample_rate, resample=True)[None]
    reference = load_audio(
        sorted((run / "examples" / "test" / "wav").glob("*_input.wav"))[0], interpreter.sample_rate
    )
    assert interpreter.interpret_batch(reference[None]).mask.shape[0] == 1
    out = tmp_path / "report"
    result = run_recipe("interpret.py", "--source", str(export), str(clip), "--out", str(out))
    assert "1 file(s) explained" in result.stdout and wav.shape[-1] > 0
