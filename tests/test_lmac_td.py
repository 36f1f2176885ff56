"""LMAC-TD: a tiny SepFormer trained through recipes/train.py, reloaded, and probed in-process."""

import json

import pytest
import soundfile as sf
import torch
from conftest import TINY_DATA, run_recipe

from interpreters.errors import InterpreterError
from interpreters.evaluation import metrics
from interpreters.experiment import load_hparams

# A SepFormer small enough for seconds on a CPU (N must be a multiple of 2·kernel).
TINY_SEPFORMER = [
    "--kernel_size=16",
    "--n_filters=32",
    "--masknet_channels=32",
    "--chunk_size=20",
    "--n_heads=1",
    "--d_ffn=32",
    "--training_crop=0.25",
]


def _args(trained_classifier, output, *extra, sepformer=TINY_SEPFORMER):
    return [
        f"--data_folder={trained_classifier['data']}",
        f"--classifier_source={trained_classifier['pretrained']}",
        f"--output_folder={output}",
        "--batch_size=4",
        "--n_examples=2",
        *TINY_DATA,
        *sepformer,
        *extra,
    ]


def _brain(trained_classifier, output, yaml="hparams/lmac_td.yaml", **overrides):
    """Build the LMAC-TD brain from a yaml, as the recipes do, without training it."""
    sepformer = TINY_SEPFORMER if yaml == "hparams/lmac_td.yaml" else []
    args = _args(trained_classifier, output, sepformer=sepformer)
    flags = {**dict(arg[2:].split("=", 1) for arg in args), **overrides}
    hparams = load_hparams(yaml, "\n".join(f"{key}: {value}" for key, value in flags.items()))
    return hparams["brain_class"](
        modules=hparams["modules"],
        hparams=hparams,
        run_opts={"device": "cpu"},
        checkpointer=hparams["checkpointer"],
    )


@pytest.fixture(scope="module")
def trained_run(trained_classifier, tmp_path_factory):
    """One epoch of the tiny SepFormer through the real recipe."""
    out = tmp_path_factory.mktemp("lmac_td") / "run"
    result = run_recipe(
        "train.py", "hparams/lmac_td.yaml", *_args(trained_classifier, out, "--number_of_epochs=1")
    )
    return out, result


def test_recipe_trains_evaluates_and_saves_examples(trained_run):
    out, result = trained_run
    assert "LMAC-TD · mixtures" in result.stdout
    checkpoints = list((out / "save").glob("CKPT+*"))
    assert len(checkpoints) == 1 and (checkpoints[0] / "interpreter.ckpt").is_file()
    table = json.loads((out / "metrics.json").read_text())
    for row in ("LMAC-TD · test", "LMAC-TD · mixtures"):
        for key in ("AI", "AD", "AG", "FF", "Fid-In", "SPS", "COMP", "MM", "recon SI-SNR"):
            assert key in table[row]
        assert 0.0 <= table[row]["MM"] <= 1.0
        assert table[row]["recon SI-SNR"] > 40  # frozen perfect-reconstruction codec
    assert "SI-SDRi" in table["LMAC-TD · mixtures"] and "oracle mask · mixtures" in table
    wavs = sorted((out / "examples" / "mixtures" / "wav").glob("*_interpretation.wav"))
    assert len(wavs) == 2 and len(sf.read(wavs[0])[0]) == 8000
    assert list((out / "examples" / "test" / "png").glob("*.png"))


def test_checkpoint_reload_gives_identical_explanations(trained_run, trained_classifier):
    out, _ = trained_run
    wavs = torch.randn(2, 2001) * 0.1
    first = _brain(trained_classifier, out)
    other_seed = _brain(trained_classifier, out, seed=7)
    before = other_seed.explainer.explain(wavs)
    first.checkpointer.recover_if_possible(min_key="loss")
    other_seed.checkpointer.recover_if_possible(min_key="loss")
    first.modules.eval(), other_seed.modules.eval()
    with torch.no_grad():
        a, b = first.explainer.explain(wavs), other_seed.explainer.explain(wavs)
    assert not torch.allclose(before.mask, b.mask)  # the seed mattered before recovery
    assert torch.equal(a.mask, b.mask) and torch.equal(a.interpretation, b.interpretation)


@pytest.mark.parametrize("length", [2001, 521])
def test_waveforms_keep_odd_input_lengths_and_add_up(trained_classifier, tmp_path, length):
    brain = _brain(trained_classifier, tmp_path)
    wavs = torch.randn(3, length) * 0.1
    explanation = brain.explainer.explain(wavs)
    assert explanation.interpretation.shape == wavs.shape == explanation.residual.shape
    frames = explanation.mask.shape[1]
    assert explanation.mask.shape == (3, frames, 32) and 0 <= explanation.mask.min()
    assert explanation.mask.max() <= 1
    rebuilt = explanation.interpretation + explanation.residual
    torch.testing.assert_close(rebuilt, wavs, atol=1e-5, rtol=0)


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_alpha_extremes_train(trained_classifier, tmp_path, alpha):
    brain = _brain(trained_classifier, tmp_path, alpha=alpha)
    wavs = torch.randn(2, 3000) * 0.1
    explanation = brain.explainer.explain(wavs)
    loss = brain.loss(
        explanation,
        brain.classifier(explanation.interpretation),
        brain.classifier(explanation.residual),
    )
    loss.backward()
    assert torch.isfinite(loss)
    interpreter = brain.modules.interpreter
    reps = [p.grad for p in interpreter.representation_decoder.parameters()]
    uses_representations = any(g is not None and g.abs().sum() > 0 for g in reps)
    assert uses_representations == (alpha > 0)
    assert all(p.grad is None for p in interpreter.encoder.parameters())  # frozen codec


def test_coverage_asks_a_mixtures_two_encoder_masks_to_cover_it(trained_classifier, tmp_path):
    """lambda_cover adds, on two-target mixtures, the share of the encoder features neither of
    a mixture's two masks keeps (weighted by the features the masks weigh)."""
    from interpreters.training.mixing import pair_coverage

    brain = _brain(trained_classifier, tmp_path, lambda_cover=2.0)
    torch.manual_seed(0)
    mixtures = torch.randn(2, 3000) * 0.1
    # rows [mixture 0, mixture 1] for one class each, then the same mixtures for another
    explanation = brain.explainer.explain(mixtures.repeat(2, 1), target=torch.tensor([0, 1, 2, 3]))
    explanation.extras["pairs"] = torch.tensor([True, True])
    features = explanation.extras["features"]
    assert features.shape == explanation.mask.shape and float(features.min()) >= 0
    heard = [brain.classifier(explanation.interpretation), brain.classifier(explanation.residual)]
    covered = brain.loss(explanation, *heard)
    brain.hparams.lambda_cover = 0.0
    plain = brain.loss(explanation, *heard)
    uncovered = pair_coverage(explanation.mask, features, explanation.extras["pairs"])
    assert float(uncovered) > 0
    torch.testing.assert_close(covered - plain, 2.0 * uncovered)


def test_narrow_masknet_still_masks_every_filter(trained_classifier, tmp_path):
    """Long atoms, many filters, a narrow masknet: one mask value per filter, halves add up."""
    brain = _brain(
        trained_classifier,
        tmp_path,
        kernel_size=32,  # kernel_stride follows as 16
        n_filters=64,
        masknet_channels=8,
        chunk_size=4,
    )
    interpreter = brain.modules.interpreter
    assert interpreter.masknet.conv1d.out_channels == 8
    assert interpreter.masknet.end_conv1x1.out_channels == 64
    wavs = torch.randn(2, 3000) * 0.1
    explanation = brain.explainer.explain(wavs)
    assert explanation.mask.shape == (2, explanation.mask.shape[1], 64)
    rebuilt = explanation.interpretation + explanation.residual
    torch.testing.assert_close(rebuilt, wavs, atol=1e-5, rtol=0)
    heard = [brain.classifier(explanation.interpretation), brain.classifier(explanation.residual)]
    brain.loss(explanation, *heard).backward()
    assert interpreter.masknet.conv1d.weight.grad.abs().sum() > 0


def test_paper_config_builds_and_runs_a_forward(trained_classifier, tmp_path):
    brain = _brain(trained_classifier, tmp_path, yaml="hparams/lmac_td_paper.yaml")
    interpreter = brain.modules.interpreter
    assert interpreter.encoder.conv1d.out_channels == 256 and interpreter.masknet.K == 250
    with torch.no_grad():
        explanation = brain.explainer.explain(torch.randn(1, 1001) * 0.1)
    assert explanation.mask.shape[-1] == 256 and explanation.interpretation.shape == (1, 1001)


def test_earlier_lmac_td_override_file_builds_the_16_sample_decision_only_model(
    trained_classifier, tmp_path
):
    brain = _brain(trained_classifier, tmp_path, yaml="hparams/lmac_td_unconditioned.yaml")
    interpreter = brain.modules.interpreter
    assert (interpreter.kernel, interpreter.stride, interpreter.alpha) == (16, 8, 0.75)
    assert interpreter.encoder.conv1d.out_channels == 64 and interpreter.masknet.K == 100
    assert not brain.explainer.conditioned and brain.hparams.mix_prob == 0.0
    assert brain.hparams.output_folder == str(tmp_path)  # the command line still wins


def test_log_spectral_distance_hand_values():
    reference = torch.ones(1, 2, 3)
    louder = reference * 10.0  # +20 dB in every bin
    assert metrics.log_spectral_distance(reference, reference).item() == 0.0
    assert metrics.log_spectral_distance(louder, reference).item() == pytest.approx(20.0)
    half = reference.clone()
    half[0, 0] *= 10 ** (10 / 20)  # one frame 10 dB up, the other exact: mean of 10 and 0
    assert metrics.log_spectral_distance(half, reference).item() == pytest.approx(5.0)
    silent = torch.zeros(1, 2, 3)  # silence sits at the floor, 80 dB below the reference peak
    assert metrics.log_spectral_distance(silent, reference).item() == pytest.approx(80.0)


def test_filter_count_that_cannot_reconstruct_is_one_line(trained_classifier, tmp_path):
    with pytest.raises(InterpreterError, match="n_filters \\(48\\).*2·kernel_size"):
        _brain(trained_classifier, tmp_path, n_filters=48)


def test_export_and_from_hparams_reproduce_the_run(trained_run, tmp_path):
    from interpreters.audio import load_audio
    from interpreters.inference import Interpreter

    out, _ = trained_run
    run_recipe("export.py", "--run", str(out), "--out", str(tmp_path / "exported"))
    interpreter = Interpreter.from_hparams(str(tmp_path / "exported"), savedir=tmp_path / "saved")
    source = sorted((out / "examples" / "test" / "wav").glob("*_input.wav"))[0]
    saved = load_audio(str(source).replace("_input.wav", "_interpretation.wav"), 16000)
    explanation = interpreter.interpret_batch(load_audio(source, 16000)[None])
    assert torch.allclose(explanation.interpretation[0], saved, atol=1e-5)


@pytest.mark.parametrize("use_hidden", [False, True])
def test_class_conditioned_decoder_explains_any_class_and_trains_on_mixtures(
    trained_classifier, tmp_path, use_hidden
):
    brain = _brain(
        trained_classifier,
        tmp_path,
        class_conditioned=True,
        use_hidden=use_hidden,
        mix_prob=1.0,
        two_targets=True,
        disjoint_pairs=True,
        seed=0,
    )
    explainer = brain.explainer
    assert explainer.conditioned
    torch.manual_seed(0)
    wavs = torch.randn(2, 3000) * 0.1
    masks = [explainer.explain(wavs, target=torch.tensor([c, c])).mask for c in (0, 1)]
    assert not torch.allclose(masks[0], masks[1])  # the mask follows the class asked
    import speechbrain as sb
    from speechbrain.dataio.batch import PaddedBatch

    batch = PaddedBatch([{"sig": 0.1 * torch.randn(3000)} for _ in range(4)])
    explanation, heard = brain.compute_forward(batch, sb.Stage.TRAIN)
    decisions = brain.classifier(batch.sig.data).argmax(-1)
    # two mixtures (clips 0+1, 2+3), each explained for both clips' own decisions
    assert explanation.target.tolist() == [*decisions[[0, 2]].tolist(), *decisions[[1, 3]].tolist()]
    loss = brain.loss(explanation, *heard)
    loss.backward()
    grads = [p.grad for p in brain.modules.interpreter.representation_decoder.parameters()]
    assert torch.isfinite(loss) and any(g is not None and g.abs().sum() > 0 for g in grads)


def test_unconditioned_lmac_td_refuses_two_targets_in_one_line(trained_classifier, tmp_path):
    brain = _brain(
        trained_classifier,
        tmp_path,
        class_conditioned=False,
        mix_prob=1.0,
        two_targets=True,
        seed=0,
        training_crop=0.0,
    )
    import speechbrain as sb
    from speechbrain.dataio.batch import PaddedBatch

    clips = sorted((trained_classifier["data"] / "train").glob("*.wav"))
    wavs = [torch.from_numpy(sf.read(path, dtype="float32")[0]) for path in clips]
    decisions = brain.classifier(torch.stack(wavs)).argmax(-1)
    first = int((decisions != decisions[0]).nonzero()[0, 0])  # a clip decided otherwise
    batch = PaddedBatch([{"sig": wavs[0]}, {"sig": wavs[first]}])
    with pytest.raises(InterpreterError, match="not conditioned on the class"):
        brain.compute_forward(batch, sb.Stage.TRAIN)
