"""CLAP as a frozen zero-shot classifier.

``ZeroShotCLAP`` loads any transformers CLAP checkpoint (hub id or folder), turns class names into
prompts, and classifies by the softmax over text-audio similarities scaled by CLAP's logit scale.
Its features are the extractor's log-mel spectrogram recomputed in torch, so gradients reach the
waveform (LMAC-ZS and GradCAM need that). Training a small CLAP here: ``training/clap.py``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from interpreters.errors import InterpreterError, first_line
from interpreters.models.base import AudioClassifier
from interpreters.sources import check_pretrained_source

DEFAULT_TEMPLATE = "this is the sound of {}"


def class_phrase(label: str) -> str:
    """A class name as words ("chirp_up" -> "chirp up")."""
    return label.replace("_", " ")


def class_prompts(labels: list[str], template: str = DEFAULT_TEMPLATE) -> list[str]:
    """One prompt per class from the template, e.g. "this is the sound of chirp up"."""
    if "{}" not in template:
        raise InterpreterError(f"prompt template '{template}' needs a '{{}}' for the class name")
    return [template.format(class_phrase(label)) for label in labels]


def load_clap(source: str, key: str = "clap_source"):
    """ClapModel and ClapProcessor from a hub id or folder; one-line errors, fast when offline."""
    from transformers import ClapModel, ClapProcessor

    hint = "train one with `python recipes/train.py hparams/clap.yaml` (its pretrained/ folder)"
    source = check_pretrained_source(source, key, hint)
    try:
        model = ClapModel.from_pretrained(source)
        processor = ClapProcessor.from_pretrained(source)
    except Exception as err:
        raise InterpreterError(
            f"{key} {source} is not a loadable CLAP checkpoint ({first_line(err)}); point {key} "
            "at a folder written by ClapModel/ClapProcessor.save_pretrained"
        ) from None
    return model, processor


class ClapFeatures(nn.Module):
    """ClapFeatureExtractor's log-mel input in torch (differentiable, batched).

    Same repeat-padding, Hann window, power spectrum, mel bank (HTK for "fusion", Slaney
    otherwise) and dB scale. Departure: clips longer than max_length are cropped at the start
    instead of at a random offset, so explanations are deterministic.
    """

    def __init__(self, extractor) -> None:
        super().__init__()
        self.n_fft = extractor.fft_window_size
        self.hop_length = extractor.hop_length
        self.max_length = int(extractor.nb_max_samples)
        self.fusion = extractor.truncation == "fusion"
        self.repeat = extractor.padding in ("repeat", "repeatpad")
        self.pad_to_multiple = extractor.padding == "repeat"
        bank = extractor.mel_filters if self.fusion else extractor.mel_filters_slaney
        self.register_buffer("mel_bank", torch.tensor(bank, dtype=torch.float32), persistent=False)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)

    def pad(self, wavs: torch.Tensor) -> torch.Tensor:
        """Crop or repeat-pad [B, N] waveforms to ``max_length`` samples as the extractor does."""
        length = wavs.shape[-1]
        if length >= self.max_length:
            return wavs[:, : self.max_length]
        if self.repeat:
            repeats = self.max_length // length + int(self.pad_to_multiple)
            wavs = wavs.repeat(1, repeats)[:, : self.max_length]
        return F.pad(wavs, (0, self.max_length - wavs.shape[-1]))

    def forward(self, wavs: torch.Tensor) -> torch.Tensor:
        """Waveforms [B, N] -> CLAP input features [B, 1 or 4, T, n_mels] (dB)."""
        spec = torch.stft(
            self.pad(wavs),
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            window=self.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
        power = spec.real.square() + spec.imag.square()
        mel = torch.einsum("bft,fm->btm", power, self.mel_bank).clamp_min(1e-10)
        features = (10.0 * torch.log10(mel)).unsqueeze(1)
        return features.expand(-1, 4, -1, -1) if self.fusion else features


def image_to_time_frequency(hidden: torch.Tensor, freq_ratio: int) -> torch.Tensor:
    """Undo HTSAT's mel-to-image folding on a hidden map [B, C, H, W] -> [B, C, T', F']."""
    batch, channels, height, width = hidden.shape
    folded = hidden.reshape(batch, channels, freq_ratio, height // freq_ratio, width)
    return folded.permute(0, 1, 2, 4, 3).reshape(
        batch, channels, freq_ratio * width, height // freq_ratio
    )


def time_frequency_to_image(unfolded: torch.Tensor, freq_ratio: int) -> torch.Tensor:
    """The inverse of ``image_to_time_frequency``: [B, C, T', F'] -> HTSAT's [B, C, H, W]."""
    batch, channels, time, freq = unfolded.shape
    width = time // freq_ratio
    folded = unfolded.reshape(batch, channels, freq_ratio, width, freq)
    return folded.permute(0, 1, 2, 4, 3).reshape(batch, channels, freq_ratio * freq, width)


class ZeroShotCLAP(AudioClassifier):
    """A frozen CLAP classifying by similarity to one text prompt per class.

    ``source`` is a hub id or folder; ``model``/``processor`` may be given instead (training).
    Hidden representations are the HTSAT stage outputs as [B, C, time, mel] maps.
    """

    frequency_scale = "mel"

    def __init__(
        self,
        source: str | None = None,
        labels: list[str] | None = None,
        template: str = DEFAULT_TEMPLATE,
        model=None,
        processor=None,
    ) -> None:
        super().__init__()
        if not labels:
            raise InterpreterError("ZeroShotCLAP needs the class labels (yaml key 'labels')")
        if model is None:
            model, processor = load_clap(source)
            model.eval().requires_grad_(False)
        self.clap = model
        self.tokenizer = processor.tokenizer
        self.labels = list(labels)
        self.template = template
        self.prompts = class_prompts(self.labels, template)
        self.sample_rate = int(processor.feature_extractor.sampling_rate)
        self.mel = ClapFeatures(processor.feature_extractor)
        self.freq_ratio = model.audio_model.audio_encoder.freq_ratio
        self._cache: dict[tuple[str, ...], torch.Tensor] = {}
        with torch.no_grad():
            hidden = self.forward_with_hidden(torch.zeros(1, self.mel.max_length))[1]
        self.hidden_channels = [h.shape[1] for h in hidden]

    @property
    def logit_scale(self) -> torch.Tensor:
        """CLAP's learnt temperature for audio-to-text logits."""
        return self.clap.logit_scale_a.exp()

    @property
    def embedding_dim(self) -> int:
        """Size of the joint text-audio embedding."""
        return int(self.clap.config.projection_dim)

    def text_embeddings(self, prompts: list[str]) -> torch.Tensor:
        """Unit-norm text embeddings [P, D] (cached: the text side is frozen)."""
        key = tuple(prompts)
        device = self.clap.logit_scale_a.device
        if key not in self._cache or self._cache[key].device != device:
            tokens = self.tokenizer(list(prompts), padding=True, return_tensors="pt").to(device)
            with torch.no_grad():
                self._cache[key] = self.clap.get_text_features(**tokens).pooler_output
        return self._cache[key]

    def class_embeddings(self) -> torch.Tensor:
        """Text embeddings of the class prompts [C, D]."""
        return self.text_embeddings(self.prompts)

    def features(self, wavs: torch.Tensor) -> torch.Tensor:
        """Waveforms -> the log-mel features ClapFeatureExtractor would compute."""
        return self.mel(wavs)

    def embed(self, features: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Features -> unit-norm audio embedding [B, D] and hidden maps [B, C, T', F'] (the
        patch embedding's and each stage's tokens, unfolded to time x mel). The encoder goes on
        from the unfolded maps, so they lie on the path to the embedding and gradients reach
        them (GradCAM, L-MAC's conditioning)."""
        encoder = self.clap.audio_model.audio_encoder
        hidden: list[torch.Tensor] = []
        hooks = [encoder.patch_embed.register_forward_hook(self._unfolding(hidden, encoder))]
        hooks += [stage.register_forward_hook(self._unfolding(hidden)) for stage in encoder.layers]
        try:
            out = self.clap.get_audio_features(input_features=features)
        finally:
            for hook in hooks:
                hook.remove()
        return out.pooler_output, hidden

    def _unfolding(self, hidden: list[torch.Tensor], encoder=None):
        """A forward hook replacing a module's tokens [B, H*W, C] by the same tokens rebuilt
        from their time x mel map, which it appends to ``hidden``. With ``encoder`` (the patch
        embedding) the grid is the encoder's first resolution; a stage reports its own."""

        def hook(module, inputs, output):
            tokens = output if encoder is not None else output[0]
            height, width = encoder.input_resolutions[0] if encoder is not None else output[2][-2:]
            batch, _, channels = tokens.shape
            image = tokens.view(batch, height, width, channels).permute(0, 3, 1, 2)
            unfolded = image_to_time_frequency(image, self.freq_ratio)
            hidden.append(unfolded)
            rebuilt = time_frequency_to_image(unfolded, self.freq_ratio)
            rebuilt = rebuilt.permute(0, 2, 3, 1).reshape(batch, height * width, channels)
            return rebuilt if encoder is not None else (rebuilt, *output[1:])

        return hook

    def audio_embeddings(self, wavs: torch.Tensor) -> torch.Tensor:
        """Waveforms -> unit-norm audio embeddings [B, D]."""
        return self.embed(self.features(wavs))[0]

    def classify(self, features: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Zero-shot logits over the class prompts and the hidden maps."""
        audio, hidden = self.embed(features)
        return self.logit_scale * audio @ self.class_embeddings().T, hidden
