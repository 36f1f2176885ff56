"""The zero-shot CLAP classifier: a small CLAP trained by hparams/clap.yaml, saved and reloaded
through transformers' from_pretrained, torch features equal to the extractor's, offline hub ids."""

import time

import numpy as np
import pytest
import torch
from conftest import TINY_DATA, run_recipe
from hyperpyyaml import load_hyperpyyaml
from transformers import ClapFeatureExtractor, ClapModel, ClapProcessor

from interpreters.data.synth import class_names
from interpreters.errors import InterpreterError
from interpreters.models.clap import ClapFeatures, ZeroShotCLAP, class_prompts


@pytest.fixture(scope="session")
def tiny_clap(tmp_path_factory):
    """One epoch of hparams/clap.yaml on tiny synth data through recipes/train.py."""
    base = tmp_path_factory.mktemp("clap")
    out = base / "clap"
    result = run_recipe(
        "train.py",
        "hparams/clap.yaml",
        f"--data_folder={base / 'data'}",
        f"--output_folder={out}",
        "--number_of_epochs=1",
        "--batch_size=8",
        *TINY_DATA,
    )
    return {"data": base / "data", "output": out, "pretrained": out / "pretrained", "run": result}


def test_recipe_checkpoints_and_saves_a_loadable_clap(tiny_clap):
    out = tiny_clap["output"]
    assert list((out / "save").glob("CKPT+*/clap.ckpt"))
    assert "tiny_clap · test (zero-shot)" in (out / "metrics.md").read_text()
    model = ClapModel.from_pretrained(tiny_clap["pretrained"])
    processor = ClapProcessor.from_pretrained(tiny_clap["pretrained"])
    assert model.config.audio_config.spec_size == 64
    ids = processor.tokenizer(["a rising whistle"])["input_ids"][0]
    assert len(ids) > 3 and processor.tokenizer.unk_token_id not in ids  # byte-level BPE


def test_save_and_reload_gives_the_same_embeddings(tmp_path):
    hparams = load_hyperpyyaml(open("hparams/clap.yaml"), {"output_folder": str(tmp_path / "run")})
    model, processor = hparams["clap"].eval(), hparams["processor"]
    wav = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    texts = ["this is the sound of siren", "a rising whistle"]

    def embed(model, processor):
        inputs = processor(
            text=texts, audio=[wav], sampling_rate=16000, return_tensors="pt", padding=True
        )
        with torch.no_grad():
            out = model(**inputs)
        return out.text_embeds, out.audio_embeds

    before = embed(model, processor)
    model.save_pretrained(tmp_path / "saved")
    processor.save_pretrained(tmp_path / "saved")
    after = embed(
        ClapModel.from_pretrained(tmp_path / "saved").eval(),
        ClapProcessor.from_pretrained(tmp_path / "saved"),
    )
    for a, b in zip(before, after):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("truncation", ["rand_trunc", "fusion"])
@pytest.mark.parametrize("length", [7000, 32000])  # repeat-padded and exact (longer: random crop)
def test_torch_features_match_the_extractor(truncation, length):
    extractor = ClapFeatureExtractor(
        feature_size=32,
        sampling_rate=16000,
        hop_length=256,
        fft_window_size=512,
        max_length_s=2,
        frequency_min=50,
        frequency_max=8000,
        truncation=truncation,
        padding="repeatpad",
    )
    wav = np.random.default_rng(length).standard_normal(length).astype(np.float32) * 0.1
    expected = extractor(wav, sampling_rate=16000, return_tensors="np")["input_features"][0]
    ours = ClapFeatures(extractor)(torch.from_numpy(wav)[None])[0].numpy()
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, atol=1e-3)


def test_zero_shot_logits_are_scaled_similarities_to_class_prompts(tiny_clap):
    labels = class_names()
    classifier = ZeroShotCLAP(str(tiny_clap["pretrained"]), labels=labels)
    assert classifier.prompts[1] == "this is the sound of chirp up"
    wavs = torch.randn(3, 8000) * 0.1
    logits, hidden = classifier.forward_with_hidden(wavs)
    audio = classifier.audio_embeddings(wavs)
    text = classifier.text_embeddings(class_prompts(labels))
    torch.testing.assert_close(logits, classifier.logit_scale * audio @ text.T)
    assert logits.shape == (3, len(labels))
    assert [h.shape[1] for h in hidden] == classifier.hidden_channels
    assert all(h.dim() == 4 for h in hidden)
    # differentiable down to the waveform (LMAC-ZS trains through it)
    wavs.requires_grad_(True)
    classifier(wavs)[:, 0].sum().backward()
    assert wavs.grad.abs().sum() > 0


def test_offline_hub_id_fails_fast_with_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(InterpreterError) as err:
        ZeroShotCLAP("laion/clap-htsat-unfused", labels=["dog", "cat"])
    assert time.monotonic() - start < 5
    assert "offline" in str(err.value) and "\n" not in str(err.value)


def test_missing_folder_and_template_errors(tmp_path):
    with pytest.raises(InterpreterError, match="not a folder"):
        ZeroShotCLAP(str(tmp_path / "nothing"), labels=["dog"])
    with pytest.raises(InterpreterError, match="is not a loadable CLAP"):
        ZeroShotCLAP(str(tmp_path), labels=["dog"])
    with pytest.raises(InterpreterError, match="template"):
        class_prompts(["dog"], "the sound of a dog")
