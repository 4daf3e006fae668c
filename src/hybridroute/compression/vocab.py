"""Vocabulary pruning: keep only the wordpieces a domain uses, and the embedding rows behind them.

MiniLM's word-embedding table (30,522 x 384 floats) is half of the FP32 model, yet a
customer-service domain uses a few thousand distinct wordpieces. Pruning keeps:

- every special token ([PAD], [UNK], [CLS], [SEP], [MASK]);
- every wordpiece the *training* texts produce at least ``min_count`` times;
- every single character and every ``##`` + single character of the original vocabulary,
  so an unseen word is spelled out in smaller pieces instead of collapsing to [UNK].

WordPiece matches the longest known prefix greedily, so a word whose pieces were all kept
tokenizes to exactly the same piece strings as before (only the ids change). Ids are
renumbered in the original order, which keeps [PAD] at 0.
"""

from __future__ import annotations

import copy
import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hybridroute.errors import ArtifactError

logger = logging.getLogger(__name__)

WORD_EMBEDDINGS_INPUT = "input_ids"  # the word-embedding Gather reads the graph input of this name


@dataclass(frozen=True)
class PrunedVocab:
    """Which old ids survive, in new-id order, and why the table has the size it has."""

    kept_ids: tuple[int, ...]  # new id i was old id kept_ids[i]
    original_size: int
    from_texts: int  # kept because the training texts use them (or as common general wordpieces)
    fallback: int  # single characters and ##characters kept so unseen words can be spelled

    @property
    def size(self) -> int:
        """Number of kept tokens."""
        return len(self.kept_ids)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary for the manifest."""
        return {
            "original_size": self.original_size,
            "kept": self.size,
            "from_training_texts": self.from_texts,
            "character_fallback": self.fallback,
        }


# ---------------------------------------------------------------- pure helpers


def is_fallback_piece(token: str, prefix: str = "##") -> bool:
    """A single character, or the continuation prefix plus a single character.

    Example: is_fallback_piece("a") -> True; is_fallback_piece("##a") -> True; is_fallback_piece("ab") -> False
    """
    return len(token) == 1 or (token.startswith(prefix) and len(token) == len(prefix) + 1)


def special_tokens(tokenizer_json: dict[str, Any]) -> set[str]:
    """Contents of the tokenizer's added (special) tokens, plus its unknown token."""
    found = {t["content"] for t in tokenizer_json.get("added_tokens", [])}
    unk = tokenizer_json.get("model", {}).get("unk_token")
    return found | ({unk} if unk else set())


def general_ids(vocab: dict[str, int], count: int, prefix: str = "##") -> set[int]:
    """The ``count`` lowest-id ordinary wordpieces (not special, not ``[unused..]``, not single characters).

    BERT-style WordPiece vocabularies list ordinary wordpieces by corpus frequency after the
    single characters, so these are the commonest general-language pieces.

    Example: general_ids({"[PAD]": 0, "a": 1, "the": 2, "of": 3, "##s": 4}, 1) -> {2}
    """
    ordinary = sorted(
        i for t, i in vocab.items() if not is_fallback_piece(t, prefix) and not (t.startswith("[") and t.endswith("]"))
    )
    return set(ordinary[:count])


def choose_kept_ids(
    vocab: dict[str, int],
    counts: Counter[int],
    specials: set[str],
    min_count: int,
    prefix: str = "##",
    keep_general: int = 0,
) -> PrunedVocab:
    """Old ids to keep, ascending.

    Example: choose_kept_ids({"[PAD]": 0, "a": 1, "ab": 2, "cd": 3}, Counter({2: 1}), {"[PAD]"}, 1)
        -> kept_ids (0, 1, 2): [PAD] as special, "a" as fallback, "ab" as used; "cd" dropped
    """
    used = {i for i, c in counts.items() if c >= min_count} | general_ids(vocab, keep_general, prefix)
    fallback = {i for t, i in vocab.items() if is_fallback_piece(t, prefix)}
    special = {vocab[t] for t in specials if t in vocab}
    kept = tuple(sorted(used | fallback | special))
    return PrunedVocab(kept, len(vocab), len(used - special), len(fallback - used - special))


def count_token_ids(tokenizer: Any, texts: Iterable[str], batch: int = 512) -> Counter[int]:
    """How often each token id occurs in ``texts`` (tokenized without truncation)."""
    counts: Counter[int] = Counter()
    texts = list(texts)
    for start in range(0, len(texts), batch):
        for encoding in tokenizer.encode_batch(texts[start : start + batch]):
            counts.update(encoding.ids)
    return counts


def remap_tokenizer_json(tokenizer_json: dict[str, Any], kept_ids: Sequence[int]) -> dict[str, Any]:
    """A copy of a WordPiece ``tokenizer.json`` whose vocabulary holds only ``kept_ids``, renumbered."""
    old_to_new = {old: new for new, old in enumerate(kept_ids)}
    result = copy.deepcopy(tokenizer_json)
    vocab = result["model"]["vocab"]
    result["model"]["vocab"] = {
        t: old_to_new[i] for t, i in sorted(vocab.items(), key=lambda x: x[1]) if i in old_to_new
    }
    for token in result.get("added_tokens", []):
        token["id"] = _new_id(old_to_new, token["id"], token["content"])
    post = result.get("post_processor") or {}
    for entry in post.get("special_tokens", {}).values():
        entry["ids"] = [_new_id(old_to_new, i, entry["id"]) for i in entry["ids"]]
    padding = result.get("padding")
    if padding:
        padding["pad_id"] = _new_id(old_to_new, padding["pad_id"], padding.get("pad_token", "pad"))
    return result


def _new_id(old_to_new: dict[int, int], old: int, what: str) -> int:
    if old not in old_to_new:
        raise ArtifactError(f"special token {what!r} (id {old}) was pruned; specials must always be kept")
    return old_to_new[old]


# ---------------------------------------------------------------- ONNX side


def word_embedding_initializer(model: Any) -> Any:
    """The initializer the word-embedding Gather reads (the Gather whose indices are ``input_ids``)."""
    inits = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Gather" and node.input[1] == WORD_EMBEDDINGS_INPUT and node.input[0] in inits:
            return inits[node.input[0]]
    raise ArtifactError("no word-embedding Gather reading 'input_ids' from an initializer; cannot prune vocabulary")


def prune_embeddings(model: Any, kept_ids: Sequence[int]) -> tuple[int, int]:
    """Keep only the rows ``kept_ids`` of the word-embedding table, in place; return (old rows, new rows)."""
    from onnx import numpy_helper

    init = word_embedding_initializer(model)
    table = numpy_helper.to_array(init)
    if max(kept_ids) >= table.shape[0]:
        raise ArtifactError(f"tokenizer id {max(kept_ids)} is beyond the embedding table ({table.shape[0]} rows)")
    init.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(table[list(kept_ids)]), init.name))
    return table.shape[0], len(kept_ids)


# ---------------------------------------------------------------- orchestration


def prune_vocabulary(
    model: Any,
    tokenizer_file: Path,
    out_tokenizer: Path,
    texts: Sequence[str],
    min_count: int = 1,
    keep_general: int = 0,
) -> PrunedVocab:
    """Prune ``model`` (an in-memory ONNX ModelProto, edited in place) and write the matching tokenizer.

    Args:
        model: the ONNX model whose word-embedding table is cut down.
        tokenizer_file: the original ``tokenizer.json`` (WordPiece).
        out_tokenizer: where the pruned ``tokenizer.json`` goes.
        texts: the texts whose wordpieces to keep: the training split, never test data.
        min_count: keep a used wordpiece only if it occurs at least this often.
        keep_general: also keep this many of the commonest general wordpieces (see :func:`general_ids`),
            so frequent words the training texts happen to miss stay whole.
    """
    from tokenizers import Tokenizer

    data = json.loads(tokenizer_file.read_text(encoding="utf-8"))
    if data.get("model", {}).get("type") != "WordPiece":
        raise ArtifactError(f"{tokenizer_file}: vocabulary pruning supports WordPiece tokenizers only")
    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    counts = count_token_ids(tokenizer, texts)
    prefix = data["model"].get("continuing_subword_prefix", "##")
    pruned = choose_kept_ids(data["model"]["vocab"], counts, special_tokens(data), min_count, prefix, keep_general)
    prune_embeddings(model, pruned.kept_ids)
    out_tokenizer.write_text(
        json.dumps(remap_tokenizer_json(data, pruned.kept_ids), ensure_ascii=False), encoding="utf-8"
    )
    logger.info(
        "vocabulary pruned %d -> %d tokens (%d used by %d training texts, %d character fallback)",
        pruned.original_size,
        pruned.size,
        pruned.from_texts,
        len(texts),
        pruned.fallback,
    )
    return pruned


def pruned_words(tokenizer_file: Path, pruned_tokenizer_file: Path, texts: Sequence[str]) -> list[bool]:
    """Per text: does it contain a word whose wordpieces changed under pruning (a rare word)?"""
    from tokenizers import Tokenizer

    before, after = Tokenizer.from_file(str(tokenizer_file)), Tokenizer.from_file(str(pruned_tokenizer_file))
    for tok in (before, after):
        tok.no_truncation()
        tok.no_padding()
    return [
        a.tokens != b.tokens
        for a, b in zip(before.encode_batch(list(texts)), after.encode_batch(list(texts)), strict=True)
    ]
