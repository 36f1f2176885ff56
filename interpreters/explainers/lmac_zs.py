"""LMAC-ZS (Paissan, Della Libera, Ravanelli, Subakan, NeurIPS 2024): listenable masks that
explain a zero-shot CLAP decision for any text prompt.

The decoder reads CLAP's audio hidden maps, conditioned (FiLM) on the prompt's text embedding and
its similarity to the audio, and outputs a mask on the linear STFT. The masked audio is
resynthesised and re-encoded by CLAP (its log-mel in torch), and must reproduce the similarity
of every audio x prompt pair of the batch:
L = mean (s_ij − ŝ_ij)² + λ_reg·mean(M) + λ_div·mean_{i≠i'} cos(M_ij, M_i'j), with s the
cosine similarity of unit embeddings (the decoder is told s in CLAP's logit units).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from interpreters.audio import FrontEnd, Spectrum
from interpreters.explainers.base import Evidence, Explainer, Explanation, resolve_target
from interpreters.explainers.lmac import MaskDecoder
from interpreters.models.clap import ZeroShotCLAP, image_to_time_frequency


class PromptMaskDecoder(nn.Module):
    """L-MAC's mask decoder on hidden maps modulated (FiLM) by [text embedding, similarity].

    ``pool`` (time, frequency) runs the decoder on an average-pooled spectrogram and upsamples
    the mask: every training step decodes batch x prompts masks, so the grid sets the cost.
    ``use_cam`` gives the refinement one more channel, the prompt's GradCAM map on CLAP's last
    stage (``gradcam_maps``): where the similarity to that prompt comes from, which the FiLM'd
    maps tell the decoder only through the text embedding.
    """

    def __init__(
        self,
        hidden_channels: list[int],
        text_dim: int,
        layers: list[int] = (-3, -2, -1),
        channels: int = 16,
        use_input: bool = True,
        pool: tuple[int, int] = (1, 1),
        use_cam: bool = False,
    ) -> None:
        super().__init__()
        self.layers = list(layers)
        self.pool = tuple(pool)
        self.use_cam = use_cam
        self.film = nn.ModuleList(
            nn.Linear(text_dim + 1, 2 * hidden_channels[i]) for i in self.layers
        )
        self.decoder = MaskDecoder(
            hidden_channels, self.layers, channels, use_input, extra_channels=int(use_cam)
        )

    def forward(
        self,
        hidden: list[torch.Tensor],
        compressed: torch.Tensor,
        text: torch.Tensor,
        similarity: torch.Tensor,
        cam: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Hidden maps, compressed STFT [B, T, F], text [B, D], similarity [B] (and, with
        ``use_cam``, the prompt's GradCAM map [B, T, F]) -> mask [B, T, F]."""
        if self.use_cam and cam is None:
            raise ValueError("this decoder reads the prompt's GradCAM map: pass cam")
        condition = torch.cat([text, similarity[:, None]], dim=-1)
        hidden = list(hidden)
        for film, i in zip(self.film, self.layers):
            gamma, beta = film(condition)[:, :, None, None].chunk(2, dim=1)
            hidden[i] = hidden[i] * (1 + gamma) + beta
        extra = cam[:, None] if self.use_cam else None
        if self.pool == (1, 1):
            return self.decoder(hidden, compressed, extra)
        coarse = F.avg_pool2d(compressed[:, None], self.pool, ceil_mode=True)[:, 0]
        if extra is not None:
            extra = F.adaptive_avg_pool2d(extra, coarse.shape[1:])
        mask = self.decoder(hidden, coarse, extra)[:, None]
        size = compressed.shape[1:]
        return F.interpolate(mask, size=size, mode="bilinear", align_corners=False)[:, 0]


def is_free_text(target, labels: list[str]) -> bool:
    """Whether ``target`` is prompt text rather than class names, indices or None."""
    items = [target] if isinstance(target, str) else target
    if not isinstance(items, (list, tuple)):
        return False
    return any(isinstance(t, str) and t not in labels for t in items)


def gradcam_maps(
    classifier: ZeroShotCLAP,
    wavs: torch.Tensor,
    text: torch.Tensor,
    size: tuple[int, int],
    rowwise: bool = False,
) -> torch.Tensor:
    """GradCAM of the similarity to each prompt on the last HTSAT stage, on the STFT grid.

    wavs [B, N], text [P, D] -> maps [B, P, T, F], each scaled to max 1; ``rowwise``: text
    [B, D], one prompt per audio -> [B, 1, T, F].
    """
    stage = classifier.clap.audio_model.audio_encoder.layers[-1]
    captured = {}
    hook = stage.register_forward_hook(lambda m, i, out: captured.update(out=out))
    try:
        with torch.enable_grad():
            features = classifier.features(wavs).detach().requires_grad_(True)
            audio = classifier.embed(features)[0]
            similarity = (audio * text).sum(-1, keepdim=True) if rowwise else audio @ text.T
            activations = captured["out"][0]  # [B, H*W, C], on the path to the embedding
            height, width = captured["out"][2][-2:]
            maps = []
            for i in range(similarity.shape[1]):
                (grad,) = torch.autograd.grad(
                    similarity[:, i].sum(), activations, retain_graph=True
                )
                weights = grad.mean(dim=1, keepdim=True)  # [B, 1, C]
                cam = F.relu((weights * activations).sum(-1))  # [B, H*W]
                maps.append(cam.detach().view(-1, 1, height, width))
    finally:
        hook.remove()
    cams = image_to_time_frequency(torch.cat(maps, dim=1), classifier.freq_ratio)  # [B,P,T',F']
    cams = F.interpolate(cams, size=size, mode="bilinear", align_corners=False)
    return cams / cams.amax(dim=(2, 3), keepdim=True).clamp_min(1e-12)


def prompt_sensitivity(maps: torch.Tensor, match: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean map value for the matching prompt and the other prompts, and the cosine similarity
    between the matching map and the others (1 = the same map whatever the prompt); per example."""
    batch, prompts = maps.shape[:2]
    rows = torch.arange(batch, device=maps.device)
    flat = maps.flatten(2)
    matching = flat[rows, match]  # [B, T*F]
    others = torch.ones(batch, prompts, dtype=torch.bool, device=maps.device)
    others[rows, match] = False
    other_flat = flat[others].view(batch, prompts - 1, -1)
    cosine = F.cosine_similarity(matching[:, None], other_flat, dim=-1)
    return {
        "match": matching.mean(-1),
        "other": other_flat.mean(dim=(1, 2)),
        "cos": cosine.mean(-1),
    }


class LMACZS(Explainer):
    """LMAC-ZS on a frozen ``ZeroShotCLAP``; ``explain`` takes classes or free-text prompts.

    For free text, ``Explanation.target`` is the zero-shot decision and
    ``extras["similarity"]`` the prompt's similarity in logit units.
    """

    accepts_prompts = True
    method_columns = ["MM-match", "MM-other", "cos-prompts", "GC-match", "GC-other", "GC-cos"]

    def __init__(
        self,
        classifier: ZeroShotCLAP,
        front_end: FrontEnd,
        decoder: PromptMaskDecoder,
        gradcam_baseline: bool = True,
        name: str = "",
    ) -> None:
        super().__init__(classifier, front_end, name or "LMAC-ZS")
        self.decoder = decoder
        self.gradcam_baseline = gradcam_baseline

    def encode(self, wavs: torch.Tensor):
        """Frozen CLAP on waveforms: audio embedding [B, D], hidden maps, class logits [B, C]."""
        clap = self.classifier
        with torch.no_grad():
            audio, hidden = clap.embed(clap.features(wavs))
            logits = clap.logit_scale * audio @ clap.class_embeddings().T
        return audio, hidden, logits

    def gather(self, wavs: torch.Tensor, lens: torch.Tensor | None, target) -> Evidence:
        """The decision, and the prompt explained: a class (its prompt) or free text."""
        wavs = wavs.to(self.device)
        audio, hidden, logits = self.encode(wavs)
        if is_free_text(target, self.labels):
            prompts = [target] * len(wavs) if isinstance(target, str) else list(target)
            text = self.classifier.text_embeddings(prompts)
            classes = logits.argmax(dim=-1)
        else:
            classes = resolve_target(target, logits, self.labels)
            text = self.classifier.class_embeddings()[classes]
        similarity = self.classifier.logit_scale * (text * audio).sum(-1)
        spectrum = self.front_end.analyse(wavs)
        return Evidence(wavs, lens, logits, hidden, classes, spectrum, (text, similarity))

    def mask(self, evidence: Evidence) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mask for the prompt (text embeddings [B, D], similarities [B])."""
        text, similarity = evidence.condition
        compressed = evidence.spectrum.compressed
        cam = None
        if self.decoder.use_cam:
            size = tuple(compressed.shape[1:])
            cam = gradcam_maps(self.classifier, evidence.wavs, text, size, rowwise=True)[:, 0]
        mask = self.decoder(evidence.hidden, compressed, text, similarity, cam)
        return mask, {"text": text, "similarity": similarity}

    # ---- every audio x prompt pair (training, and evaluation's prompt sensitivity) ---------

    def pair_outputs(self, wavs: torch.Tensor, classes: torch.Tensor) -> dict[str, torch.Tensor]:
        """Masks M_ij [B, P, T, F], similarities s_ij and ŝ_ij [B, P] for audios i, prompts j,
        and the zero-shot logits of each masked audio over every class prompt [B, P, C] (with a
        GradCAM-reading decoder, its maps too)."""
        audio, hidden, logits = self.encode(wavs)
        text = self.classifier.class_embeddings()[classes]  # [P, D]
        batch, prompts = len(wavs), len(classes)
        similarity = audio @ text.T  # [B, P] cosine
        scale = self.classifier.logit_scale
        spectrum = self.front_end.analyse(wavs)
        pairs = Spectrum(
            spectrum.compressed.repeat_interleave(prompts, 0),
            spectrum.phase.repeat_interleave(prompts, 0),
            spectrum.length,
        )
        cams = None
        if self.decoder.use_cam:
            cams = gradcam_maps(self.classifier, wavs, text, tuple(spectrum.compressed.shape[1:]))
        mask = self.decoder(
            [h.repeat_interleave(prompts, 0) for h in hidden],
            pairs.compressed,
            text.repeat(batch, 1),
            scale * similarity.reshape(-1),
            None if cams is None else cams.flatten(0, 1),
        )
        kept = self.classifier.audio_embeddings(self.front_end.synthesise(pairs, mask))
        masked_similarity = (kept * text.repeat(batch, 1)).sum(-1)
        masked_logits = scale * kept @ self.classifier.class_embeddings().T
        outputs = {
            "masks": mask.view(batch, prompts, *mask.shape[1:]),
            "similarity": similarity,
            "masked_similarity": masked_similarity.view(batch, prompts),
            "masked_logits": masked_logits.view(batch, prompts, -1),
            "silence_similarity": self.silence_similarity(wavs.shape[-1], text),
            "logits": logits,
            "classes": classes,
            "spectrum": spectrum,
            "text": text,
        }
        if cams is not None:
            outputs["cams"] = cams
        return outputs

    def silence_similarity(self, n_samples: int, text: torch.Tensor) -> torch.Tensor:
        """Cosine similarity of silence to each prompt [P]: what an empty mask reproduces."""
        with torch.no_grad():
            silent = torch.zeros(1, n_samples, device=text.device)
            return (self.classifier.audio_embeddings(silent) @ text.T)[0]

    def decision_explanation(self, pairs: dict) -> Explanation:
        """The zero-shot decision's explanation read off pairs made with every class prompt
        (the decision's mask is one of them), so evaluation encodes each clip once."""
        logits = pairs["logits"]
        classes = logits.argmax(dim=-1)
        rows = torch.arange(len(classes), device=classes.device)
        mask = pairs["masks"][rows, classes]
        similarity = self.classifier.logit_scale * pairs["similarity"][rows, classes]
        extras = {
            "text": pairs["text"][classes],
            "similarity": similarity,
            "pair_masks": pairs["masks"].detach(),
            "pair_similarity": pairs["similarity"],
            "pair_masked_similarity": pairs["masked_similarity"],
            "pair_masked_logits": pairs["masked_logits"],
            "pair_silence_similarity": pairs["silence_similarity"],
            "pair_logits": logits,
        }
        interpretation, residual = self.front_end.listenable(pairs["spectrum"], mask)
        return Explanation(
            mask, interpretation, residual, logits, classes, extras, pairs["spectrum"]
        )

    def explain_for_evaluation(
        self, wavs: torch.Tensor, lens: torch.Tensor | None = None
    ) -> Explanation:
        """The decision's explanation with every class prompt's mask (and GradCAM map) kept,
        for the prompt-sensitivity columns."""
        wavs = wavs.to(self.device)
        every = torch.arange(self.classifier.n_classes, device=self.device)
        pairs = self.pair_outputs(wavs, every)
        explanation = self.decision_explanation(pairs)
        if self.gradcam_baseline:
            cams = pairs.get("cams")  # a GradCAM-reading decoder's input is the baseline's map
            if cams is None:
                grid = tuple(explanation.mask.shape[1:])
                embeddings = self.classifier.class_embeddings()
                cams = gradcam_maps(self.classifier, wavs, embeddings, grid)
            explanation.extras["gradcam"] = cams
        return explanation

    def method_metrics(self, explanation: Explanation) -> dict[str, torch.Tensor]:
        """Prompt sensitivity of LMAC-ZS's masks and of the GradCAM baseline (decision = match)."""
        values = {}
        names = {"pair_masks": ("MM-match", "MM-other", "cos-prompts")}
        names["gradcam"] = ("GC-match", "GC-other", "GC-cos")
        for key, columns in names.items():
            if key in explanation.extras:
                scores = prompt_sensitivity(explanation.extras[key], explanation.target)
                values.update(zip(columns, (scores["match"], scores["other"], scores["cos"])))
        return values
