"""Training a small CLAP from scratch here: captions, a local tokenizer and a contrastive Brain.

``ClapBrain`` trains a tiny CLAP on the synth data with generated captions and a locally trained
byte-level BPE tokenizer, and saves it with ``save_pretrained`` so ``ZeroShotCLAP`` loads it like
any hub CLAP.
"""

from __future__ import annotations

import random
from pathlib import Path

import speechbrain as sb
import torch
import torch.nn.functional as F
import yaml
from speechbrain.utils.distributed import if_main_process

from interpreters.evaluation.tables import write_metrics
from interpreters.models.clap import (
    DEFAULT_TEMPLATE,
    ClapFeatures,
    ZeroShotCLAP,
    class_phrase,
    class_prompts,
)
from interpreters.training.brain import Brain
from interpreters.training.classifier import random_gain_and_shift

SILENCE_CAPTION = "silence"  # caption of the silent clips mixed into CLAP training batches

# Several wordings per synth class: "train" captions are seen while training CLAP, "held_out"
# ones never are (they test whether the text side generalises to new descriptions).
SYNTH_CAPTIONS: dict[str, dict[str, list[str]]] = {
    "tone_burst": {
        "train": ["a tone burst", "a steady beep", "a short pure tone", "a flat electronic tone"],
        "held_out": ["a constant pitch beep", "a brief sine tone"],
    },
    "chirp_up": {
        "train": ["a chirp up", "an upward sweep", "a tone gliding up", "a pitch going higher"],
        "held_out": ["a rising whistle", "an ascending sweep"],
    },
    "chirp_down": {
        "train": ["a chirp down", "a downward sweep", "a tone gliding down", "a pitch going lower"],
        "held_out": ["a falling whistle", "a descending sweep"],
    },
    "noise_burst": {
        "train": ["a noise burst", "a short hiss", "a blast of static", "a brief rush of noise"],
        "held_out": ["a sudden hiss", "a quick burst of static"],
    },
    "click_train": {
        "train": ["a click train", "a series of clicks", "rapid ticking", "repeated sharp clicks"],
        "held_out": ["a ticking sequence", "many quick clicks"],
    },
    "vowel": {
        "train": ["a vowel", "a voice singing a vowel", "a sung aah", "a human voice humming"],
        "held_out": ["someone singing", "a voiced vowel sound"],
    },
    "siren": {
        "train": ["a siren", "a wailing alarm", "an emergency siren", "a warbling alarm tone"],
        "held_out": ["an ambulance wailing", "a police alarm"],
    },
    "band_noise": {
        "train": ["band noise", "a filtered rumble", "a steady band of noise", "a whooshing hum"],
        "held_out": ["a filtered hiss", "a continuous whoosh"],
    },
    "tweet": {
        "train": ["a tweet", "a bird call", "a bird chirping", "a short bird song"],
        "held_out": ["a songbird", "birds tweeting"],
    },
    "knock": {
        "train": ["a knock", "knocking on a door", "a wooden knock", "a dull thud"],
        "held_out": ["someone knocking", "a tap on wood"],
    },
    "buzz": {
        "train": ["a buzz", "an electric buzz", "a harsh buzzing", "a droning buzzer"],
        "held_out": ["a buzzing insect", "a harsh electrical hum"],
    },
}


def captions(labels: list[str], split: str = "train") -> dict[str, list[str]]:
    """Wordings per class; classes without written captions get their name."""
    return {
        label: SYNTH_CAPTIONS.get(label, {}).get(split, [class_phrase(label)]) for label in labels
    }


def train_tokenizer(
    folder: str | Path, labels: list[str], template: str = DEFAULT_TEMPLATE, vocab_size: int = 600
):
    """Byte-level BPE trained on the training captions and class prompts, saved as a Roberta
    tokenizer in ``folder`` (reloaded when already there, so resuming keeps the same ids)."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizerFast

    folder = Path(folder)
    if not (folder / "tokenizer.json").is_file():
        texts = [SILENCE_CAPTION, *class_prompts(labels, template)] + [
            text for wordings in captions(labels).values() for text in wordings
        ]
        bpe = ByteLevelBPETokenizer()
        bpe.train_from_iterator(
            texts,
            vocab_size=vocab_size,
            min_frequency=1,
            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        )
        folder.mkdir(parents=True, exist_ok=True)
        bpe.save_model(str(folder))
        RobertaTokenizerFast(
            vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt")
        ).save_pretrained(str(folder))
    return RobertaTokenizerFast.from_pretrained(str(folder))


def class_contrastive_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """CLAP's symmetric cross-entropy for audio [B] x one caption per class [C] logits: each clip
    picks its class's caption; each caption picks (equally) the clips of its class in the batch.

    One caption per class rather than per clip: batches repeat classes, and per-clip captions
    made false negatives that stalled training of the small model from scratch.
    """
    audio_to_text = F.cross_entropy(logits, labels)
    same = (torch.arange(logits.shape[1], device=labels.device)[:, None] == labels[None]).float()
    present = same.sum(dim=1) > 0
    targets = same[present] / same[present].sum(dim=1, keepdim=True)
    text_to_audio = F.cross_entropy(logits.T[present], targets)
    return (audio_to_text + text_to_audio) / 2


class ClapBrain(Brain):
    """Contrastive training of a CLAP on captioned clips; zero-shot accuracy to select and test."""

    checkpoint_keys = {"max_keys": ["accuracy"]}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.caption_rng = random.Random(self.hparams.seed)  # which wording each step uses
        # the class prompt is one of the wordings, as LAION-CLAP's keyword-to-caption templates
        prompts = dict(
            zip(self.hparams.labels, class_prompts(self.hparams.labels, self.hparams.template))
        )
        self.train_captions = {
            label: [*wordings, prompts[label]]
            for label, wordings in captions(self.hparams.labels, "train").items()
        }

    @property
    def features(self) -> ClapFeatures:
        """The processor's log-mel features in torch (built once)."""
        if not hasattr(self, "_features"):
            self._features = ClapFeatures(self.hparams.processor.feature_extractor)
        return self._features

    def zero_shot(self) -> ZeroShotCLAP:
        """The model being trained, seen as a zero-shot classifier (shares its weights)."""
        clap = getattr(self.modules.clap, "module", self.modules.clap)
        return ZeroShotCLAP(
            labels=self.hparams.labels,
            template=self.hparams.template,
            model=clap,
            processor=self.hparams.processor,
        ).to(self.device)

    def compute_forward(self, batch, stage):
        """Audio embeddings of (augmented) clips; while training, a ``silence_fraction`` of
        them replaced by silence (captioned "silence"), so that an empty mask means "nothing"
        to CLAP rather than the class whose clips are mostly silent."""
        wavs = batch.sig.data.to(self.device)
        self.silent = torch.zeros(len(wavs), dtype=torch.bool, device=self.device)
        if stage == sb.Stage.TRAIN:
            if self.hparams.augment_gain_db > 0:
                wavs = random_gain_and_shift(wavs, self.hparams.augment_gain_db)
            self.silent = torch.rand(len(wavs), device=self.device) < self.hparams.silence_fraction
            wavs = wavs * (~self.silent[:, None]).float()
        features = self.features.to(self.device)(wavs)
        return self.modules.clap.get_audio_features(input_features=features).pooler_output

    def compute_objectives(self, audio, batch, stage):
        """Contrastive loss against one sampled caption per class; zero-shot accuracies outside
        training."""
        labels = batch.label_index.data[:, 0].to(self.device)
        names = self.hparams.labels
        if stage == sb.Stage.TRAIN:
            texts = [self.caption_rng.choice(self.train_captions[n]) for n in names]
        else:
            texts = [self.train_captions[n][0] for n in names]
        if self.silent.any():
            texts.append(SILENCE_CAPTION)
            labels = torch.where(self.silent, len(names), labels)
        clap = getattr(self.modules.clap, "module", self.modules.clap)
        tokens = self.hparams.processor.tokenizer(texts, padding=True, return_tensors="pt")
        text = clap.get_text_features(**tokens.to(self.device)).pooler_output
        loss = class_contrastive_loss(clap.logit_scale_a.exp() * audio @ text.T, labels)
        if stage != sb.Stage.TRAIN:
            with torch.no_grad():
                zs = self.zero_shot_model
                template = audio @ zs.class_embeddings().T
                held_out = audio @ self.held_out_embeddings(zs).T
            self.correct += int((template.argmax(-1) == labels).sum())
            self.correct_held_out += int((held_out.argmax(-1) == labels).sum())
            self.total += len(labels)
        return loss

    def held_out_embeddings(self, zs: ZeroShotCLAP) -> torch.Tensor:
        """One embedding per class: the normalised mean of its held-out wordings."""
        wordings = captions(zs.labels, "held_out")
        return torch.stack(
            [F.normalize(zs.text_embeddings(wordings[c]).mean(0), dim=-1) for c in zs.labels]
        )

    def on_stage_start(self, stage, epoch=None) -> None:
        """Reset the accuracy counters; a fresh zero-shot view of the model to evaluate."""
        self.correct, self.correct_held_out, self.total = 0, 0, 0
        if stage != sb.Stage.TRAIN:
            with torch.no_grad():
                self.zero_shot_model = self.zero_shot()

    def stage_stats(self, stage, stage_loss: float) -> dict[str, float]:
        """Loss, zero-shot accuracy with the template and with held-out wordings."""
        total = max(self.total, 1)
        return {
            "loss": stage_loss,
            "accuracy": 100.0 * self.correct / total,
            "held-out accuracy": 100.0 * self.correct_held_out / total,
        }

    def run_evaluation(self, datasets: dict, loader_kwargs: dict) -> Path:
        """Test the best checkpoint, write metrics.md, save model + processor to pretrained/."""
        self.evaluate(datasets["test"], max_key="accuracy", test_loader_kwargs=dict(loader_kwargs))
        folder = Path(self.hparams.output_folder)
        if if_main_process():
            results = {f"{self.hparams.model_name} · test (zero-shot)": self.test_stats}
            write_metrics(folder, results, ["accuracy", "held-out accuracy", "loss"])
            clap = getattr(self.modules.clap, "module", self.modules.clap)
            clap.save_pretrained(folder / "pretrained")
            self.hparams.processor.save_pretrained(folder / "pretrained")
            write_card(folder / "pretrained", self.hparams.labels, self.hparams.template)
        return folder / "metrics.md"


def write_card(folder: Path, labels: list[str], template: str) -> None:
    """A hyperparams.yaml next to the transformers files: what the model was trained on, and the
    file SpeechBrain fetching expects (recipes/export.py copies the folder into an export)."""
    body = yaml.safe_dump({"labels": list(labels), "template": template}, sort_keys=False)
    (Path(folder) / "hyperparams.yaml").write_text(
        "# A CLAP in transformers format: load it with ClapModel/ClapProcessor.from_pretrained\n"
        "# (or interpreters.models.clap.ZeroShotCLAP). Classes and prompt it learnt:\n" + body
    )
