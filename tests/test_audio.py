"""The shared front end: analysis/resynthesis, masks, oracle mask, audio reading and its errors."""

import numpy as np
import pytest
import soundfile as sf
import torch

from interpreters.audio import FrontEnd, load_audio, save_audio, unit_phase
from interpreters.errors import InterpreterError


@pytest.mark.parametrize("length", [8000, 8001, 7777])
def test_full_mask_gives_back_the_input_and_empty_mask_silence(length):
    torch.manual_seed(0)
    front_end = FrontEnd(16000, n_fft=512, hop_length=128)
    wavs = torch.randn(2, length) * 0.1
    spectrum = front_end.analyse(wavs)
    assert spectrum.compressed.shape == (2, front_end.n_frames(length), front_end.n_freqs)
    interpretation, residual = front_end.listenable(spectrum, torch.ones_like(spectrum.compressed))
    assert interpretation.shape == wavs.shape
    assert torch.allclose(interpretation, wavs, atol=1e-4)
    assert residual.abs().max() < 1e-6


def test_unit_phase_matches_angle_and_is_one_where_silent():
    spec = torch.randn(2, 5, 9, dtype=torch.complex64)
    spec[0, 0, :3] = 0
    phase = unit_phase(spec, spec.abs())
    assert torch.allclose(phase, torch.polar(torch.ones(2, 5, 9), torch.angle(spec)), atol=1e-6)
    assert torch.equal(phase[0, 0, :3], torch.ones(3, dtype=torch.complex64))


def test_half_mask_halves_the_compressed_magnitude():
    front_end = FrontEnd(16000, n_fft=256, hop_length=64, compression="log1p")
    wav = torch.sin(torch.arange(4000) * 0.3).unsqueeze(0)
    spectrum = front_end.analyse(wav)
    kept = front_end.synthesise(spectrum, torch.full_like(spectrum.compressed, 0.5))
    again = front_end.analyse(kept).compressed
    middle = slice(4, -4)  # away from the edges, where STFT consistency is exact enough
    peak = spectrum.compressed[0, middle].amax(dim=-1)
    assert torch.allclose(again[0, middle].amax(dim=-1), peak / 2, rtol=0.05)


def test_ideal_mask_recovers_a_source_better_than_the_mixture():
    front_end = FrontEnd(16000, n_fft=512, hop_length=128)
    t = torch.arange(16000) / 16000
    target = torch.sin(2 * torch.pi * 440 * t).unsqueeze(0) * 0.5
    other = torch.sin(2 * torch.pi * 3000 * t).unsqueeze(0) * 0.5
    mixture = target + other
    mask = front_end.ideal_mask(mixture, target)
    assert mask.min() >= 0 and mask.max() <= 1
    estimate = front_end.synthesise(front_end.analyse(mixture), mask)
    error_mix = (mixture - target).pow(2).mean()
    error_oracle = (estimate - target).pow(2).mean()
    assert error_oracle < 0.01 * error_mix


def test_unknown_compression_is_a_clear_error():
    with pytest.raises(InterpreterError, match="compression 'cube'"):
        FrontEnd(compression="cube")


def test_save_and_load_round_trip(tmp_path):
    wav = torch.linspace(-0.5, 0.5, 1601)
    save_audio(tmp_path / "a.wav", wav, 16000)
    back = load_audio(tmp_path / "a.wav", 16000)
    assert torch.allclose(back, wav)


def test_load_audio_errors_name_the_file(tmp_path):
    with pytest.raises(InterpreterError, match="missing.wav does not exist"):
        load_audio(tmp_path / "missing.wav", 16000)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF0000WAVEnot really audio")
    with pytest.raises(InterpreterError, match="corrupt.wav cannot be read"):
        load_audio(corrupt, 16000)
    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, np.zeros((800, 2), dtype="float32") + 0.1, 16000)
    with pytest.raises(InterpreterError, match="stereo.wav has 2 channels"):
        load_audio(stereo, 16000)
    assert load_audio(stereo, 16000, downmix=True).shape == (800,)
    rate = tmp_path / "rate.wav"
    sf.write(rate, np.full(4410, 0.1, dtype="float32"), 44100)
    with pytest.raises(InterpreterError, match="44100 Hz, 16000 Hz expected"):
        load_audio(rate, 16000)
    assert load_audio(rate, 16000, resample=True).shape == (1600,)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(800, dtype="float32"), 16000)
    with pytest.raises(InterpreterError, match="silent.wav is silent"):
        load_audio(silent, 16000, allow_silence=False)
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.array([0.1, np.nan, 0.2], dtype="float32"), 16000, subtype="FLOAT")
    with pytest.raises(InterpreterError, match="nan.wav contains NaN"):
        load_audio(nan, 16000)


def test_applied_gain_is_the_linear_gain_a_compressed_mask_applies():
    front_end = FrontEnd(16000, n_fft=256, hop_length=128)
    magnitude = torch.tensor([[[100.0, 1.0, 0.0]]])
    gain = front_end.applied_gain(torch.tensor([[[0.5, 1.0, 1.0]]]), magnitude)
    # expm1(0.5·log1p 100) / 100 = (√101 − 1) / 100 ≈ 0.0905 (about −21 dB), not 0.5
    torch.testing.assert_close(gain, torch.tensor([[[(101**0.5 - 1) / 100, 1.0, 1.0]]]))
    assert front_end.applied_gain(torch.zeros(1, 1, 3), magnitude).abs().max() == 0


def test_every_length_resynthesises_without_a_click_at_the_end():
    # Lengths 254 and 255 mod 256 used to leave the last samples under one window tail only:
    # a half mask gave 5-12x the input's peak there.
    front_end = FrontEnd(16000, n_fft=512, hop_length=256)
    generator = torch.Generator().manual_seed(0)
    for length in range(16000, 16000 + 257):
        wav = (torch.rand(1, length, generator=generator) * 2 - 1) * 0.4
        spectrum = front_end.analyse(wav)
        assert spectrum.compressed.shape[1] == front_end.n_frames(length)
        whole = front_end.synthesise(spectrum, torch.ones_like(spectrum.compressed))
        assert whole.shape == wav.shape and (whole - wav).abs().max() < 1e-5, length
        half = front_end.synthesise(spectrum, torch.full_like(spectrum.compressed, 0.5))
        assert half.abs().max() < wav.abs().max(), length


@pytest.mark.parametrize("settings", [{}, {"n_fft": 400, "win_length": 300, "hop_length": 160}])
def test_compressed_magnitude_in_chunks_equals_the_whole_stft(settings):
    front_end = FrontEnd(16000, **settings)
    for length in (1601, 16000 * 3 + 17, 100000):
        wavs = torch.randn(2, length, generator=torch.Generator().manual_seed(length))
        whole = front_end.compress(front_end.stft(wavs).abs())
        chunked = front_end.compressed_magnitude(wavs, chunk_frames=37)
        assert chunked.shape == whole.shape
        torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=0)


def test_a_mask_carried_to_another_rate_keeps_what_it_kept():
    from interpreters.audio import mask_at_rate, resample_wav

    front_end = FrontEnd(16000)
    t = torch.arange(44100 * 2) / 44100
    tones = {hz: torch.sin(2 * torch.pi * hz * t) for hz in (1000, 5000, 12000)}
    wav44 = 0.3 * tones[1000] + 0.3 * tones[5000] + 0.1 * tones[12000]
    wav16 = resample_wav(wav44, 44100, 16000)
    spectrum = front_end.analyse(wav16[None])
    mask = torch.zeros(spectrum.compressed.shape[1:])
    mask[:, :64] = 1.0  # keeps what lies below 2 kHz
    at16, _ = front_end.listenable(spectrum, mask[None])
    same, _ = mask_at_rate(front_end, mask, wav16, 16000)
    torch.testing.assert_close(same, at16[0], atol=1e-6, rtol=0)
    for keep_above in (True, False):
        at44, residual = mask_at_rate(front_end, mask, wav44, 44100, keep_above)
        assert at44.shape == wav44.shape == residual.shape
        back = resample_wav(at44, 44100, 16000)
        assert torch.corrcoef(torch.stack([back, at16[0]]))[0, 1] > 0.99
        energy = torch.fft.rfft(at44).abs()
        frequencies = torch.fft.rfftfreq(len(at44), 1 / 44100)
        at = {hz: energy[(frequencies - hz).abs() < 100].sum() for hz in tones}
        assert at[5000] < 0.05 * at[1000]
        assert (at[12000] > 0.2 * at[1000]) == keep_above
