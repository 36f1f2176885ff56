"""LMAC-ZS on the tiny CLAP: one epoch through recipes/train.py, explanations for free-text
prompts, prompt-sensitivity scoring and the GradCAM baseline."""

import pytest
import torch
from conftest import TINY_DATA, run_recipe
from test_clap import tiny_clap  # noqa: F401  (session fixture: the CLAP being explained)

from interpreters.errors import InterpreterError
from interpreters.evaluation.run import load_method
from interpreters.explainers.lmac_zs import gradcam_maps, is_free_text, prompt_sensitivity


def plain_clap(clap, folder):
    """The CLAP as a bare ``save_pretrained`` folder: the transformers files only."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    for path in clap["pretrained"].iterdir():
        if path.name != "hyperparams.yaml":
            shutil.copyfile(path, folder / path.name)
    return folder


def _args(clap, output, clap_source=None):
    return [
        f"--data_folder={clap['data']}",
        f"--clap_source={clap_source or clap['pretrained']}",
        f"--output_folder={output}",
        "--batch_size=8",
        "--n_examples=2",
        "--prompts_per_batch=3",
        *TINY_DATA,
    ]


@pytest.fixture(scope="module")
def trained_run(tiny_clap, tmp_path_factory):  # noqa: F811
    """One epoch of hparams/lmac_zs.yaml through the real recipe, then the explainer reloaded."""
    base = tmp_path_factory.mktemp("lmac_zs")
    out = base / "run"
    args = _args(tiny_clap, out, plain_clap(tiny_clap, base / "plain_clap"))
    result = run_recipe("train.py", "hparams/lmac_zs.yaml", *args, "--number_of_epochs=1")
    explainer = load_method(["hparams/lmac_zs.yaml", *args, "--device=cpu"]).explainer
    return out, result, explainer


def test_recipe_trains_checkpoints_and_writes_the_table(trained_run):
    out, result, _ = trained_run
    assert list((out / "save").glob("CKPT+*/decoder.ckpt"))
    table = (out / "metrics.md").read_text()
    for row in ["LMAC-ZS · test", "LMAC-ZS · mixtures", "oracle mask · mixtures"]:
        assert row in table
    for column in ["AI", "Fid-In", "SI-SDRi", "MM-match", "MM-other", "GC-cos"]:
        assert f" {column} |" in table.splitlines()[0]
    assert list((out / "examples" / "test" / "wav").glob("*_interpretation.wav"))


def test_explain_any_prompt_and_masks_differ(trained_run):
    _, _, explainer = trained_run
    wavs = torch.randn(2, 8000) * 0.1
    frames, freqs = explainer.front_end.n_frames(8000), explainer.front_end.n_freqs
    rising = explainer.explain(wavs, target="a rising whistle")
    knock = explainer.explain(wavs, target="someone knocking")
    assert rising.mask.shape == (2, frames, freqs)
    assert rising.interpretation.shape == wavs.shape == rising.residual.shape
    assert 0 <= float(rising.mask.min()) and float(rising.mask.max()) <= 1
    assert (rising.mask - knock.mask).abs().max() > 1e-4
    torch.testing.assert_close(rising.logits, knock.logits)  # the decision is the same
    decision = explainer.explain(wavs)
    by_index = explainer.explain(wavs, target=decision.target[0].item())
    by_prompt = explainer.explain(
        wavs, target=explainer.classifier.prompts[decision.target[0].item()]
    )
    torch.testing.assert_close(by_index.mask[0], decision.mask[0])
    torch.testing.assert_close(by_prompt.mask, by_index.mask)
    per_item = explainer.explain(wavs, target=["a rising whistle", "someone knocking"])
    # (padding the prompts together shifts the text embeddings by float noise)
    torch.testing.assert_close(per_item.mask[0], rising.mask[0], atol=1e-2, rtol=0)
    torch.testing.assert_close(per_item.mask[1], knock.mask[1], atol=1e-2, rtol=0)
    with pytest.raises(InterpreterError):
        explainer.explain(wavs, target=99)


def test_evaluation_reads_the_decision_off_the_every_prompt_pairs(trained_run):
    _, _, explainer = trained_run
    wavs = torch.randn(3, 8000) * 0.1
    every = torch.arange(explainer.classifier.n_classes)
    with torch.no_grad():
        derived = explainer.decision_explanation(explainer.pair_outputs(wavs, every))
        direct = explainer.explain(wavs)
    assert torch.equal(derived.target, direct.target)
    assert torch.allclose(derived.mask, direct.mask, atol=1e-5)
    assert torch.allclose(derived.interpretation, direct.interpretation, atol=1e-5)
    assert torch.allclose(derived.extras["similarity"], direct.extras["similarity"], atol=1e-5)


def test_gradcam_maps_on_the_stft_grid(trained_run):
    _, _, explainer = trained_run
    wavs = torch.randn(2, 8000) * 0.1
    text = explainer.classifier.class_embeddings()[:3]
    maps = gradcam_maps(explainer.classifier, wavs, text, (17, 33))
    assert maps.shape == (2, 3, 17, 33)
    assert float(maps.min()) >= 0 and float(maps.amax(dim=(2, 3)).max()) <= 1 + 1e-6


def test_prompt_sensitivity_hand_values():
    maps = torch.zeros(1, 3, 2, 2)
    maps[0, 1] = 1.0  # only the matching prompt's map is on
    maps[0, 2, 0, 0] = 0.5
    scores = prompt_sensitivity(maps, torch.tensor([1]))
    assert float(scores["match"]) == 1.0
    assert float(scores["other"]) == pytest.approx(0.5 / 8)
    assert float(scores["cos"]) == pytest.approx(0.25)  # cos(ones, e_0) = 0.5, cos(ones, 0) = 0
    same = prompt_sensitivity(torch.ones(2, 4, 3, 3), torch.tensor([0, 3]))
    torch.testing.assert_close(same["cos"], torch.ones(2))


def test_mismatch_term_weighs_each_mask_by_how_little_its_audio_matches_the_prompt():
    from types import SimpleNamespace

    from interpreters.training.lmac_zs import LMACZSBrain

    masks = torch.ones(1, 2, 1, 2)
    masks[0, 1] = 0.5
    pairs = {
        "masks": masks,
        "similarity": torch.zeros(1, 2),
        "masked_similarity": torch.zeros(1, 2),
        "logits": torch.tensor([[0.5, 0.25, 0.25]]).log(),
        "classes": torch.tensor([0, 2]),
    }
    weights = SimpleNamespace(
        lambda_reg=0.0, lambda_div=0.0, lambda_mismatch=2.0, lambda_in=0.0, silent_mismatch=False
    )
    loss = LMACZSBrain.pair_loss(SimpleNamespace(hparams=weights), pairs)
    # mean((1 - 0.5)·1, (1 - 0.25)·0.5) = 0.4375, times λ = 2
    assert float(loss) == pytest.approx(0.875)


def test_silent_mismatch_target_moves_to_silence_as_the_prompt_matches_less():
    from types import SimpleNamespace

    from interpreters.training.lmac_zs import LMACZSBrain, similarity_target

    pairs = {
        "masks": torch.zeros(1, 2, 1, 2),
        "similarity": torch.tensor([[0.8, 0.4]]),
        "masked_similarity": torch.tensor([[0.8, 0.4]]),  # what keeping everything gives
        "silence_similarity": torch.tensor([0.1, 0.2]),
        "logits": torch.tensor([[0.5, 0.25, 0.25]]).log(),
        "classes": torch.tensor([0, 2]),
    }
    probabilities = torch.tensor([[0.5, 0.25, 0.25]])
    assert torch.equal(similarity_target(pairs, probabilities, False), pairs["similarity"])
    # decision (p 0.5, relative 1): 0.8; prompt of class 2 (relative 0.5): 0.5·0.4 + 0.5·0.2
    target = similarity_target(pairs, probabilities, True)
    torch.testing.assert_close(target, torch.tensor([[0.8, 0.3]]))
    weights = dict(lambda_reg=0.0, lambda_div=0.0, lambda_mismatch=0.0, lambda_in=0.0)
    for silent, expected in [(False, 0.0), (True, (0.4 - 0.3) ** 2 / 2)]:
        brain = SimpleNamespace(hparams=SimpleNamespace(**weights, silent_mismatch=silent))
        assert float(LMACZSBrain.pair_loss(brain, pairs)) == pytest.approx(expected)


def test_in_term_asks_the_decisions_masked_audio_to_keep_the_decision():
    """Only pairs whose prompt is the clip's decision count: clip 0 decides class 0 (its pair
    0), clip 1 decides class 1, whose prompt is not in the batch."""
    from types import SimpleNamespace

    from interpreters.training.lmac_zs import LMACZSBrain, decision_kept_loss

    masked_logits = torch.zeros(2, 2, 3)
    masked_logits[0, 0] = torch.tensor([0.6, 0.2, 0.2]).log()  # clip 0, prompt of class 0
    masked_logits[0, 1] = torch.tensor([0.1, 0.1, 0.8]).log()  # clip 0, prompt of class 2
    pairs = {
        "masks": torch.zeros(2, 2, 1, 2),
        "similarity": torch.zeros(2, 2),
        "masked_similarity": torch.zeros(2, 2),
        "masked_logits": masked_logits,
        "logits": torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]]).log(),
        "classes": torch.tensor([0, 2]),
    }
    probabilities = pairs["logits"].softmax(-1)
    assert float(decision_kept_loss(pairs, probabilities)) == pytest.approx(
        -torch.tensor(0.6).log()
    )
    weights = SimpleNamespace(
        lambda_reg=0.0, lambda_div=0.0, lambda_mismatch=0.0, lambda_in=2.0, silent_mismatch=False
    )
    loss = LMACZSBrain.pair_loss(SimpleNamespace(hparams=weights), pairs)
    assert float(loss) == pytest.approx(-2 * torch.tensor(0.6).log())
    pairs["classes"] = torch.tensor([2, 2])  # no clip's decision among the prompts
    assert float(decision_kept_loss(pairs, probabilities)) == 0.0


def test_mixture_terms_count_both_sources_decisions():
    """A mixture of a class-0 and a class-2 clip: both prompts are matches (no silent target)
    and both masks must keep their class; a class repeated across sources counts once."""
    from interpreters.training.lmac_zs import decision_kept_loss, similarity_target

    masked_logits = torch.zeros(1, 3, 3)
    masked_logits[0, 0] = torch.tensor([0.6, 0.2, 0.2]).log()  # prompt of class 0
    masked_logits[0, 1] = torch.tensor([0.3, 0.3, 0.4]).log()  # prompt of class 1
    masked_logits[0, 2] = torch.tensor([0.1, 0.1, 0.8]).log()  # prompt of class 2
    pairs = {
        "similarity": torch.tensor([[0.8, 0.4, 0.6]]),
        "silence_similarity": torch.tensor([0.0, 0.2, 0.0]),
        "masked_logits": masked_logits,
        "classes": torch.tensor([0, 1, 2]),
    }
    sources = torch.tensor([[[0.8, 0.1, 0.1], [0.2, 0.2, 0.6]]])
    target = similarity_target(pairs, sources, True)
    # class 1: relative 0.1 / 0.8 and 0.2 / 0.6, the larger (1/3) counts
    torch.testing.assert_close(target, torch.tensor([[0.8, 0.4 / 3 + 0.2 * 2 / 3, 0.6]]))
    expected = -(torch.tensor(0.6).log() + torch.tensor(0.8).log()) / 2
    assert float(decision_kept_loss(pairs, sources)) == pytest.approx(float(expected))
    same = sources[:, [0, 0]]  # an unmixed clip: its decision once, as with [B, C]
    assert float(decision_kept_loss(pairs, same)) == pytest.approx(
        float(decision_kept_loss(pairs, sources[:, 0]))
    )


def test_mixed_training_step_explains_both_clips(trained_run):
    """mix_prob 1: the batch is mixed as mix_parts mixes it, each mixture carries both clips'
    probabilities (taken before mixing), and the pair loss trains the real decoder on it."""
    from types import SimpleNamespace

    from interpreters.training.lmac_zs import LMACZSBrain
    from interpreters.training.mixing import mix_parts

    _, _, explainer = trained_run
    wavs = torch.randn(4, 8000, generator=torch.Generator().manual_seed(0)) * 0.1
    lens = torch.ones(4)
    hparams = SimpleNamespace(
        mix_prob=1.0, snr_range=[-5.0, 5.0], silent_mismatch=True, lambda_reg=0.5,
        lambda_div=0.1, lambda_mismatch=0.0, lambda_in=1.0, prompts_per_batch=3,
    )  # fmt: skip
    brain = SimpleNamespace(
        hparams=hparams, explainer=explainer, mix_generator=torch.Generator().manual_seed(3)
    )
    mixed, sources = LMACZSBrain.training_audio(brain, wavs, lens)
    expected = mix_parts(wavs, lens, (-5.0, 5.0), torch.Generator().manual_seed(3), 1.0)[0]
    torch.testing.assert_close(mixed, expected)
    clean = explainer.encode(wavs)[2].softmax(-1)
    torch.testing.assert_close(sources, torch.stack([clean, clean.roll(-1, dims=0)], dim=1))
    pairs = explainer.pair_outputs(mixed, sources.argmax(-1).unique()[:3])
    pairs["source_probabilities"] = sources
    explainer.decoder.zero_grad()
    LMACZSBrain.pair_loss(brain, pairs).backward()
    grads = [p.grad for p in explainer.decoder.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    hparams.mix_prob = 0.0
    same, single = LMACZSBrain.training_audio(brain, wavs, lens)
    assert torch.equal(same, wavs) and single.shape == (4, 1, clean.shape[-1])


def test_free_text_is_told_from_class_targets():
    labels = ["siren", "knock"]
    assert is_free_text("a rising whistle", labels)
    assert is_free_text(["siren", "a dog"], labels)
    assert not is_free_text("siren", labels)
    assert not is_free_text(None, labels) and not is_free_text(1, labels)


def test_export_from_hparams_and_cli_prompt(trained_run, tiny_clap, tmp_path):  # noqa: F811
    out, _, explainer = trained_run
    exported = tmp_path / "exported"
    run_recipe("export.py", "--run", str(out), "--out", str(exported))
    assert (exported / "clap_source" / "model.safetensors").is_file()  # self-contained
    from interpreters.inference import Interpreter

    interpreter = Interpreter.from_hparams(str(exported), tmp_path / "fetched")
    wavs = torch.randn(1, 8000) * 0.1
    ours = interpreter.interpret_batch(wavs, target="a rising whistle")
    with torch.no_grad():
        reference = explainer.explain(wavs, target="a rising whistle")
    torch.testing.assert_close(ours.mask, reference.mask)
    clip = sorted((tiny_clap["data"] / "test").glob("*.wav"))[0]
    result = run_recipe(
        "interpret.py",
        "--source",
        str(exported),
        str(clip),
        "--out",
        str(tmp_path / "cli"),
        "--prompt",
        "a rising whistle",
    )
    assert "1 file(s) explained" in result.stdout
    assert list((tmp_path / "cli").rglob("interpretation.wav"))


def test_a_clap_at_another_rate_than_the_data_stops_in_one_line(tiny_clap, tmp_path):  # noqa: F811
    import json

    folder = plain_clap(tiny_clap, tmp_path / "clap32k")
    config = json.loads((folder / "processor_config.json").read_text())
    extractor = config["feature_extractor"]  # a CLAP at 32 kHz (laion's are at 48 kHz)
    extractor.update(sampling_rate=32000, max_length_s=1)  # the same 32000-sample input
    (folder / "processor_config.json").write_text(json.dumps(config))
    args = _args(tiny_clap, tmp_path / "run", folder)
    with pytest.raises(
        InterpreterError,
        match="is at 16000 Hz but the classifier expects 32000 Hz; set sample_rate: 32000",
    ):
        load_method(["hparams/lmac_zs.yaml", *args, "--device=cpu"])


def test_a_clap_folder_is_its_own_classifier_kind_and_asks_for_its_labels(tiny_clap, tmp_path):  # noqa: F811
    from interpreters.models.clap import ZeroShotCLAP
    from interpreters.models.kinds import classifier_kind
    from interpreters.models.loading import load_classifier

    folder = plain_clap(tiny_clap, tmp_path / "clap")
    assert classifier_kind(str(folder)) == "clap"
    with pytest.raises(InterpreterError, match="set zero_shot_labels") as err:
        load_classifier(str(folder), tmp_path / "save")
    assert "\n" not in str(err.value)
    classifier = load_classifier(str(folder), tmp_path / "save", labels=["knock", "siren"])
    assert isinstance(classifier, ZeroShotCLAP) and classifier.labels == ["knock", "siren"]
    assert not any(p.requires_grad for p in classifier.parameters())


def test_compare_clap_scores_lmac_zs_and_a_baseline_on_the_same_decisions(
    trained_run,
    tiny_clap,  # noqa: F811
    tmp_path,
):
    """hparams/compare_clap.yaml through recipes/evaluate.py: LMAC-ZS from its checkpoint and
    GradCAM on the CLAP's last stage explain the same zero-shot decision of the same clips."""
    import json

    from interpreters.data.synth import class_names

    out, _, _ = trained_run
    clap = str(tiny_clap["pretrained"])
    lmac_zs = {
        "clap_source": clap,
        "save_folder": str(out / "save"),
        "output_folder": str(tmp_path / "zs"),
    }
    gradcam = {
        "classifier_source": clap,
        "classifier_kind": "clap",
        "zero_shot_labels": class_names(),
        "method": "gradcam",
        "gradcam_layer": "hidden.-1",
        "output_folder": str(tmp_path / "gc"),
    }
    methods = {
        "methods": [
            {"name": "LMAC-ZS", "hparams": "hparams/lmac_zs.yaml", "overrides": lmac_zs},
            {"name": "GradCAM", "hparams": "hparams/baselines.yaml", "overrides": gradcam},
        ]
    }
    run_recipe(
        "evaluate.py",
        "hparams/compare_clap.yaml",
        f"--data_folder={tiny_clap['data']}",
        f"--output_folder={tmp_path / 'compare'}",
        f"--method_list={json.dumps(methods)}",
        "--batch_size=8",
        "--n_examples=1",
        "--timing_clips=4",
        "--sanity_clips=4",
        *TINY_DATA,
    )
    record = json.loads((tmp_path / "compare" / "comparison.json").read_text())
    assert not record["skipped"]
    for name in ["LMAC-ZS · test", "GradCAM · test", "GradCAM · mixtures"]:
        assert 0 <= record["metrics"][name]["AD"] <= 100
    assert set(record["verdicts"]) == {"LMAC-ZS", "GradCAM"}
    zs = json.loads((tmp_path / "zs" / "metrics.json").read_text())
    gc = json.loads((tmp_path / "gc" / "metrics.json").read_text())
    assert zs["LMAC-ZS · mixtures"]["in-mix"] == gc["GradCAM · mixtures"]["in-mix"]


def test_a_gradcam_reading_decoder_gets_each_prompts_map(trained_run):
    """use_cam: the decoder's extra channel is the prompt's GradCAM map; explaining one prompt
    per clip (row-wise maps) and every audio x prompt pair (pairwise maps) give the same masks,
    the map changes the mask, and evaluation's GradCAM columns read the same maps."""
    from interpreters.explainers.lmac_zs import LMACZS, PromptMaskDecoder

    _, _, trained = trained_run
    clap = trained.classifier
    torch.manual_seed(0)
    decoder = PromptMaskDecoder(
        clap.hidden_channels, clap.embedding_dim, channels=4, pool=(2, 4), use_cam=True
    ).eval()
    explainer = LMACZS(clap, trained.front_end, decoder)
    wavs = torch.randn(3, 8000, generator=torch.Generator().manual_seed(1)) * 0.1
    text = clap.class_embeddings()
    pairwise = gradcam_maps(clap, wavs, text, (9, 17))
    rows = gradcam_maps(clap, wavs, text[[0, 2, 1]], (9, 17), rowwise=True)
    torch.testing.assert_close(rows[:, 0], pairwise[[0, 1, 2], [0, 2, 1]])
    every = torch.arange(clap.n_classes)
    with torch.no_grad():
        pairs = explainer.pair_outputs(wavs, every)
        derived = explainer.decision_explanation(pairs)
        direct = explainer.explain(wavs)
        evaluated = explainer.explain_for_evaluation(wavs)
    assert pairs["cams"].shape == (3, clap.n_classes, *direct.mask.shape[1:])
    torch.testing.assert_close(derived.mask, direct.mask, atol=1e-5, rtol=0)
    assert torch.equal(evaluated.extras["gradcam"], pairs["cams"])
    evidence = explainer.gather(wavs, None, None)
    text, similarity = evidence.condition
    compressed = evidence.spectrum.compressed
    blind = decoder(evidence.hidden, compressed, text, similarity, torch.zeros_like(compressed))
    assert (blind - direct.mask).abs().max() > 1e-4
    with pytest.raises(ValueError, match="pass cam"):
        decoder(evidence.hidden, compressed, text, similarity)
