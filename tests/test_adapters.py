"""Adapters that bring other classifiers to the one contract: transformers audio classifiers
(AST, wav2vec2, HuBERT, Whisper) with their feature extraction in torch, SpeechBrain inference
folders, and kind detection. Tiny random models saved locally; nothing is downloaded."""

import shutil
import time
from pathlib import Path

import pytest
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.dataio.encoder import CategoricalEncoder
from speechbrain.inference.classifiers import AudioClassifier as SpectrogramInterface
from speechbrain.inference.classifiers import EncoderClassifier
from transformers import (
    ASTConfig,
    ASTFeatureExtractor,
    ASTForAudioClassification,
    AutoFeatureExtractor,
    ClapFeatureExtractor,
    HubertConfig,
    HubertForSequenceClassification,
    Wav2Vec2Config,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2ForSequenceClassification,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForAudioClassification,
)

from interpreters.audio import FrontEnd
from interpreters.errors import InterpreterError
from interpreters.explainers.attribution import GradCAM
from interpreters.models.kinds import classifier_kind, load_any_classifier
from interpreters.models.loading import export_classifier
from interpreters.models.spectrogram_cnn import SpectrogramCNN
from interpreters.models.speechbrain_inference import SpeechBrainClassifier
from interpreters.models.transformers_audio import TokenMap, TransformersClassifier
from interpreters.models.transformers_features import front_end_for

LABELS = ["siren", "dog", "bird"]  # not sorted: index order must come from the files
ID2LABEL = dict(enumerate(LABELS))
TINY = dict(num_attention_heads=2, intermediate_size=32, id2label=ID2LABEL)
WAV2VEC2 = dict(
    hidden_size=16,
    num_hidden_layers=2,
    conv_dim=(8, 8),
    conv_stride=(5, 4),
    conv_kernel=(10, 4),
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=2,
    classifier_proj_size=8,
    **TINY,
)
HF_MODELS = {
    "ast": lambda: ASTForAudioClassification(
        ASTConfig(
            hidden_size=16,
            num_hidden_layers=2,
            num_mel_bins=32,
            max_length=64,
            patch_size=8,
            frequency_stride=8,
            time_stride=8,
            **TINY,
        )
    ),
    "wav2vec2": lambda: Wav2Vec2ForSequenceClassification(Wav2Vec2Config(**WAV2VEC2)),
    "wav2vec2_raw": lambda: Wav2Vec2ForSequenceClassification(Wav2Vec2Config(**WAV2VEC2)),
    "hubert": lambda: HubertForSequenceClassification(HubertConfig(**WAV2VEC2)),
    "whisper": lambda: WhisperForAudioClassification(
        WhisperConfig(
            d_model=16,
            encoder_layers=2,
            encoder_attention_heads=2,
            encoder_ffn_dim=32,
            decoder_layers=1,
            decoder_attention_heads=2,
            num_mel_bins=20,
            max_source_positions=50,
            classifier_proj_size=8,
            id2label=ID2LABEL,
        )
    ),
}
EXTRACTORS = {
    "ast": lambda: ASTFeatureExtractor(num_mel_bins=32, max_length=64),
    "wav2vec2": lambda: Wav2Vec2FeatureExtractor(do_normalize=True),
    "wav2vec2_raw": lambda: Wav2Vec2FeatureExtractor(do_normalize=False, sampling_rate=8000),
    "hubert": lambda: Wav2Vec2FeatureExtractor(do_normalize=False),
    "whisper": lambda: WhisperFeatureExtractor(feature_size=20, chunk_length=1),
}
LENGTHS = [1000, 7000, 16000]  # AST: 16000 samples are past its 64-frame window (cropped)


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    """One saved folder per family, and its classifier."""
    base = tmp_path_factory.mktemp("transformers")
    folders, classifiers = {}, {}
    for name, build in HF_MODELS.items():
        torch.manual_seed(0)
        folders[name] = base / name
        build().save_pretrained(folders[name])
        EXTRACTORS[name]().save_pretrained(folders[name])
        classifiers[name] = TransformersClassifier(str(folders[name]))
    return {"folders": folders, "classifiers": classifiers}


def noise(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    """Reproducible quiet noise [batch, length]."""
    return torch.randn(batch, length, generator=torch.Generator().manual_seed(seed)) * 0.1


def extracted(folder: Path, wavs: torch.Tensor) -> torch.Tensor:
    """The model's own feature extractor on a batch, as the tensor the model reads."""
    extractor = AutoFeatureExtractor.from_pretrained(folder)
    inputs = extractor(
        list(wavs.numpy()), sampling_rate=extractor.sampling_rate, return_tensors="pt"
    )
    return inputs[extractor.model_input_names[0]]


@pytest.mark.parametrize("name", list(HF_MODELS))
@pytest.mark.parametrize("length", LENGTHS)
def test_torch_features_equal_the_extractor(hf, name, length):
    classifier, wavs = hf["classifiers"][name], noise(2, length, seed=length)
    ours = classifier.network_input(classifier.features(wavs))
    expected = extracted(hf["folders"][name], wavs)
    assert ours.shape == expected.shape
    assert (ours - expected).abs().max() < 1e-4


@pytest.mark.parametrize("name", list(HF_MODELS))
def test_logits_equal_the_models_own_and_gradients_reach_the_waveform(hf, name):
    classifier, wavs = hf["classifiers"][name], noise(2, 7000)
    with torch.no_grad():
        expected = classifier.model(**{classifier.input_name: extracted(hf["folders"][name], wavs)})
    wavs.requires_grad_(True)
    logits = classifier(wavs)
    assert (logits - expected.logits).abs().max() < 1e-4
    logits[:, 0].sum().backward()
    assert torch.isfinite(wavs.grad).all() and wavs.grad.abs().sum() > 0


def test_labels_and_sample_rate_come_from_the_folder(hf):
    for name, classifier in hf["classifiers"].items():
        assert classifier.labels == LABELS
        assert classifier.sample_rate == (8000 if name == "wav2vec2_raw" else 16000)
    assert hf["classifiers"]["ast"].frequency_scale == "mel"


@pytest.mark.parametrize("name", list(HF_MODELS))
def test_hidden_maps_are_canonical_and_span_the_input(hf, name):
    classifier = hf["classifiers"][name]
    steps = []
    for length in (4000, 8000, 12000):
        _, hidden = classifier.forward_with_hidden(noise(2, length))
        assert [h.shape[1] for h in hidden] == classifier.hidden_channels
        assert all(h.dim() == 4 and h.shape[0] == 2 for h in hidden)
        steps.append(hidden[-1].shape[2])
        bands = hidden[-1].shape[3]
        if name.startswith(("wav2vec2", "hubert")):  # the conv encoder's frames of the input
            assert steps[-1] == classifier.model._get_feat_extract_output_lengths(length)
        if name == "whisper":  # 2 mel frames of 160 samples per step, 30 s padding cropped
            assert abs(steps[-1] - length / 320) <= 1
    assert steps[0] < steps[1] < steps[2]
    assert bands == (4 if name == "ast" else 1)  # AST: (32 mel - 8) // 8 + 1 frequency patches


@pytest.mark.parametrize("name", ["ast", "wav2vec2", "whisper"])
def test_maps_are_the_blocks_hidden_states_through_the_declared_geometry(hf, name):
    classifier = hf["classifiers"][name]
    features = classifier.features(noise(1, 6000))
    _, maps = classifier.classify(features)
    states = classifier.model(
        **{classifier.input_name: classifier.network_input(features)}, output_hidden_states=True
    ).hidden_states
    span = classifier.geometry.span(features.shape[1])
    # hidden_states[i + 1] is block i's output (the last one may have a final norm applied)
    torch.testing.assert_close(maps[0], classifier.maps[0](states[1], span))


def test_ast_map_is_time_by_frequency_on_the_patch_grid(hf):
    classifier = hf["classifiers"]["ast"]
    model = classifier.model.audio_spectrogram_transformer
    inputs = classifier.network_input(classifier.features(noise(1, 6000)))
    tokens = model.embeddings(inputs) - model.embeddings.position_embeddings
    patches = model.embeddings.patch_embeddings.projection(inputs.unsqueeze(1).transpose(2, 3))
    grid = TokenMap(2, classifier.geometry.bands).grid(tokens)  # [B, D, time, freq]
    torch.testing.assert_close(grid, patches.transpose(2, 3))  # the conv's own (freq, time) axes

    quiet = noise(1, 9600)
    burst = quiet.clone()
    burst[:, 800:3200] += torch.sin(torch.arange(2400) * 0.3) * 3.0  # early in the clip
    change = (
        (classifier.forward_with_hidden(burst)[1][0] - classifier.forward_with_hidden(quiet)[1][0])
        .abs()
        .mean(dim=(0, 1, 3))
    )
    half = len(change) // 2
    assert change[:half].mean() > 2 * change[half:].mean()


def test_layer_layouts_make_gradcam_land_on_the_right_axes(hf):
    ast, wav2vec2 = hf["classifiers"]["ast"], hf["classifiers"]["wav2vec2"]
    assert ast.layer_layout("maps.0") == "CTF"
    assert ast.layer_layout("model.audio_spectrogram_transformer.layers.0") is None
    assert wav2vec2.layer_layout("model.wav2vec2.encoder.layers.1") == "TC"
    assert wav2vec2.layer_layout("model.wav2vec2.feature_extractor.conv_layers.0") == "CT"
    assert hf["classifiers"]["whisper"].layer_layout("model.encoder.layers.0") is None
    front_end = FrontEnd(16000, n_fft=256, hop_length=128)
    for classifier in (ast, wav2vec2, hf["classifiers"]["whisper"]):
        explanation = GradCAM(classifier, front_end, "maps.0").explain(noise(2, 6000))
        assert explanation.mask.shape == (2, front_end.n_frames(6000), front_end.n_freqs)
    with pytest.raises(InterpreterError, match="declares no axes"):
        GradCAM(ast, front_end, "model.audio_spectrogram_transformer.layers.0")


def test_unsupported_extractors_hidden_layers_and_sources_are_one_line(hf, tmp_path):
    with pytest.raises(InterpreterError, match="ClapFeatureExtractor is not supported yet"):
        front_end_for(ClapFeatureExtractor(), "my-clap")
    HF_MODELS["wav2vec2"]().save_pretrained(tmp_path / "mixed")
    EXTRACTORS["whisper"]().save_pretrained(tmp_path / "mixed")
    with pytest.raises(InterpreterError, match="WhisperFeatureExtractor is not supported yet"):
        TransformersClassifier(str(tmp_path / "mixed"))
    with pytest.raises(InterpreterError, match="the encoder has 2 blocks"):
        TransformersClassifier(str(hf["folders"]["ast"]), hidden_layers=[5])
    with pytest.raises(InterpreterError, match="not a folder"):
        TransformersClassifier(str(tmp_path / "nothing"))
    start = time.monotonic()
    with pytest.raises(InterpreterError, match="offline") as err:
        TransformersClassifier("MIT/ast-finetuned-audioset-10-10-0.4593")
    assert time.monotonic() - start < 5 and "\n" not in str(err.value)
    with pytest.raises(InterpreterError, match="longer|at most"):
        hf["classifiers"]["whisper"](noise(1, 20000))


# ---- SpeechBrain inference folders ---------------------------------------------------------

SB_HEAD = """
pretrained_path: placeholder/not-fetched
sample_rate: 16000
n_mels: 20
"""
SB_PRETRAINER = """
label_encoder: !new:speechbrain.dataio.encoder.CategoricalEncoder
pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        embedding_model: !ref <embedding_model>
        classifier: !ref <classifier>
        label_encoder: !ref <label_encoder>
    paths:
        embedding_model: !ref <pretrained_path>/embedding_model.ckpt
        classifier: !ref <pretrained_path>/classifier.ckpt
        label_encoder: !ref <pretrained_path>/label_encoder.txt
"""
ECAPA = """
compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: !ref <n_mels>
    sample_rate: !ref <sample_rate>
mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
    std_norm: False
embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
    input_size: !ref <n_mels>
    channels: [8, 8, 8, 24]
    kernel_sizes: [5, 3, 3, 1]
    dilations: [1, 2, 3, 1]
    attention_channels: 4
    res2net_scale: 2
    se_channels: 4
    lin_neurons: 8
classifier: !new:speechbrain.lobes.models.ECAPA_TDNN.Classifier
    input_size: 8
    out_neurons: 3
modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    embedding_model: !ref <embedding_model>
    classifier: !ref <classifier>
"""
XVECTOR = """
spec_mag_power: 2
use_melspectra: True
compute_stft: !new:speechbrain.processing.features.STFT
    n_fft: 400
    sample_rate: !ref <sample_rate>
compute_fbank: !new:speechbrain.processing.features.Filterbank
    n_mels: !ref <n_mels>
    n_fft: 400
    sample_rate: !ref <sample_rate>
embedding_model: !new:speechbrain.lobes.models.Xvector.Xvector
    in_channels: !ref <n_mels>
    tdnn_blocks: 2
    tdnn_channels: [8, 8]
    tdnn_kernel_sizes: [5, 3]
    tdnn_dilations: [1, 2]
    lin_neurons: 8
classifier: !new:speechbrain.lobes.models.Xvector.Classifier
    input_shape: [null, null, 8]
    lin_blocks: 1
    lin_neurons: 8
    out_neurons: 3
modules:
    compute_stft: !ref <compute_stft>
    compute_fbank: !ref <compute_fbank>
    embedding_model: !ref <embedding_model>
    classifier: !ref <classifier>
"""
SB_LAYOUTS = {"ecapa": (ECAPA, EncoderClassifier), "xvector": (XVECTOR, SpectrogramInterface)}


def speechbrain_folder(folder: Path, body: str, labels: list[str] = LABELS) -> Path:
    """A SpeechBrain inference folder (hub layout) with random weights and ``labels``."""
    folder.mkdir(parents=True)
    text = SB_HEAD + body + SB_PRETRAINER
    (folder / "hyperparams.yaml").write_text(text)
    torch.manual_seed(0)
    hparams = load_hyperpyyaml(text, {"pretrained_path": str(folder)})
    for name in ("embedding_model", "classifier"):
        torch.save(hparams[name].state_dict(), folder / f"{name}.ckpt")
    encoder = CategoricalEncoder()
    encoder.update_from_iterable(labels)
    encoder.save(folder / "label_encoder.txt")
    return folder


@pytest.fixture(scope="module")
def sb(tmp_path_factory):
    """One folder per layout and its adapter."""
    base = tmp_path_factory.mktemp("speechbrain")
    folders = {
        name: speechbrain_folder(base / name, body) for name, (body, _) in SB_LAYOUTS.items()
    }
    classifiers = {
        name: SpeechBrainClassifier(str(folder), savedir=base / f"{name}_adapter")
        for name, folder in folders.items()
    }
    return {"base": base, "folders": folders, "classifiers": classifiers}


@pytest.mark.parametrize("name", list(SB_LAYOUTS))
def test_speechbrain_adapter_gives_speechbrains_own_outputs(sb, name):
    folder, interface = sb["folders"][name], SB_LAYOUTS[name][1]
    loaded = interface.from_hparams(
        source=str(folder),
        savedir=str(sb["base"] / f"{name}_speechbrain"),
        overrides={"pretrained_path": str(folder)},
    )
    classifier, wavs = sb["classifiers"][name], noise(2, 8000)
    expected = loaded.classify_batch(wavs)[0].reshape(2, -1)
    logits = classifier(wavs.clone().requires_grad_(True))
    torch.testing.assert_close(classifier.speechbrain_output(logits), expected, atol=1e-5, rtol=0)
    assert classifier.stripped == ("softmax" if name == "xvector" else None)
    assert classifier.labels == LABELS and classifier.sample_rate == 16000


@pytest.mark.parametrize("name", list(SB_LAYOUTS))
def test_speechbrain_hidden_maps_layouts_and_gradients(sb, name):
    classifier = sb["classifiers"][name]
    frames = []
    for length in (4000, 8000):
        wavs = noise(2, length).requires_grad_(True)
        logits, hidden = classifier.forward_with_hidden(wavs)
        assert [h.shape[1] for h in hidden] == classifier.hidden_channels == [8, 8]
        assert all(h.shape[3] == 1 for h in hidden)
        frames.append(hidden[0].shape[2])
        logits[:, 0].sum().backward()
        assert torch.isfinite(wavs.grad).all() and wavs.grad.abs().sum() > 0
    assert frames == [26, 51]  # the features' frames (10 ms hop): the maps span the input
    expected = "CT" if name == "ecapa" else "TC"
    assert {classifier.layer_layout(n) for n in classifier.hidden_layers} == {expected}


def test_speechbrain_options_and_sources_are_one_line(sb, tmp_path):
    folder = str(sb["folders"]["ecapa"])
    chosen = SpeechBrainClassifier(
        folder, tmp_path / "a", hidden_layers={"mods.embedding_model.mfa": "CT"}
    )
    assert chosen.hidden_channels == [24]
    with pytest.raises(InterpreterError, match="no submodule"):
        SpeechBrainClassifier(folder, tmp_path / "b", hidden_layers={"mods.nothing": "CT"})
    with pytest.raises(InterpreterError, match="not a known layout"):
        SpeechBrainClassifier(folder, tmp_path / "c", hidden_layers={"mods.embedding_model": "XY"})
    with pytest.raises(InterpreterError, match="declares sample_rate 16000"):
        SpeechBrainClassifier(folder, tmp_path / "d", sample_rate=8000)
    custom = shutil.copytree(folder, tmp_path / "custom")
    (custom / "custom_interface.py").write_text(
        "from speechbrain.inference.classifiers import EncoderClassifier\n\n\n"
        "class TinyInterface(EncoderClassifier):\n    pass\n"
    )
    assert classifier_kind(str(custom)) == "speechbrain"
    through_custom = SpeechBrainClassifier(
        str(custom), tmp_path / "f", interface="custom_interface.py:TinyInterface"
    )
    wavs = noise(1, 4000)
    torch.testing.assert_close(through_custom(wavs), sb["classifiers"]["ecapa"](wavs))
    start = time.monotonic()
    with pytest.raises(InterpreterError, match="offline") as err:
        SpeechBrainClassifier("speechbrain/cnn14-esc50", tmp_path / "e")
    assert time.monotonic() - start < 5 and "\n" not in str(err.value)


# ---- kinds ---------------------------------------------------------------------------------


def test_kinds_are_detected_and_loaded(hf, sb, tmp_path):
    export = export_classifier(SpectrogramCNN(LABELS, channels=[4]), tmp_path / "export")
    expected = {
        export: ("interpreters", SpectrogramCNN),
        sb["folders"]["ecapa"]: ("speechbrain", SpeechBrainClassifier),
        sb["folders"]["xvector"]: ("speechbrain", SpeechBrainClassifier),
        hf["folders"]["ast"]: ("transformers", TransformersClassifier),
        hf["folders"]["whisper"]: ("transformers", TransformersClassifier),
    }
    for folder, (kind, cls) in expected.items():
        assert classifier_kind(str(folder)) == kind
        classifier = load_any_classifier(str(folder), tmp_path / "save" / folder.name)
        assert isinstance(classifier, cls) and classifier.labels == LABELS
    assert classifier_kind(str(export), kind="speechbrain") == "speechbrain"


def test_kind_errors_are_one_line(hf, sb, tmp_path):
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "notes.txt").write_text("no model here")
    with pytest.raises(InterpreterError) as err:
        classifier_kind(str(tmp_path / "none"))
    message = str(err.value)
    assert "\n" not in message and all(k in message for k in ("interpreters", "speechbrain"))
    assert "config.json with id2label" in message and "hyperparams.yaml" in message
    both = shutil.copytree(sb["folders"]["ecapa"], tmp_path / "both")
    shutil.copy(hf["folders"]["ast"] / "config.json", both)
    with pytest.raises(InterpreterError, match="several kinds.*set classifier_kind"):
        classifier_kind(str(both))
    with pytest.raises(InterpreterError, match="unknown"):
        classifier_kind(str(both), kind="onnx")
    start = time.monotonic()
    with pytest.raises(InterpreterError, match="offline") as err:
        classifier_kind("speechbrain/cnn14-esc50", tmp_path / "hub")
    assert time.monotonic() - start < 5 and "\n" not in str(err.value)
