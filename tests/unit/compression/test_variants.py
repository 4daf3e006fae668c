from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from hybridroute.compression.embeddings import quantize_rows
from hybridroute.compression.selection import (
    Candidate,
    check_preference,
    fastest_qualifying,
    smallest_qualifying,
    within_drop,
)
from hybridroute.compression.variants import (
    Variant,
    default_variants,
    source_layout,
    student_variants,
    variants_by_name,
)
from hybridroute.compression.vocab import choose_kept_ids, general_ids, is_fallback_piece, remap_tokenizer_json
from hybridroute.errors import ArtifactError, ConfigError
from hybridroute.runs import RunLayout
from hybridroute.runtime.fastpath import bucket_length, softmax_row, suggested_buckets


def test_fallback_pieces_are_single_characters():
    assert is_fallback_piece("a") and is_fallback_piece("##a")
    assert not is_fallback_piece("ab") and not is_fallback_piece("##ab")


def test_kept_ids_are_specials_used_and_fallback():
    vocab = {"[PAD]": 0, "[UNK]": 1, "a": 2, "##b": 3, "card": 4, "cards": 5, "loan": 6}
    pruned = choose_kept_ids(vocab, Counter({4: 3, 6: 1}), {"[PAD]", "[UNK]"}, min_count=2)
    assert pruned.kept_ids == (0, 1, 2, 3, 4)  # "loan" seen once < min_count, "cards" never
    assert pruned.from_texts == 1 and pruned.fallback == 2


def test_general_ids_are_the_lowest_ordinary_ids():
    vocab = {"[PAD]": 0, "[unused0]": 1, "a": 2, "##a": 3, "the": 4, "of": 5, "##ing": 6}
    assert general_ids(vocab, 2) == {4, 5}
    assert general_ids(vocab, 0) == set()
    pruned = choose_kept_ids(vocab, Counter(), {"[PAD]"}, 1, keep_general=1)
    assert pruned.kept_ids == (0, 2, 3, 4)


def test_remap_renumbers_vocab_and_special_ids():
    data = {
        "added_tokens": [{"id": 0, "content": "[PAD]"}, {"id": 5, "content": "[CLS]"}],
        "post_processor": {"special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [5], "tokens": ["[CLS]"]}}},
        "padding": None,
        "model": {"vocab": {"[PAD]": 0, "x": 1, "y": 2, "[CLS]": 5}},
    }
    out = remap_tokenizer_json(data, [0, 2, 5])
    assert out["model"]["vocab"] == {"[PAD]": 0, "y": 1, "[CLS]": 2}
    assert out["added_tokens"][1]["id"] == 2
    assert out["post_processor"]["special_tokens"]["[CLS]"]["ids"] == [2]
    assert data["model"]["vocab"]["y"] == 2  # the input is not modified


def test_remap_refuses_to_drop_a_special_token():
    data = {"added_tokens": [{"id": 5, "content": "[CLS]"}], "model": {"vocab": {"[CLS]": 5, "x": 1}}}
    with pytest.raises(ArtifactError, match="CLS"):
        remap_tokenizer_json(data, [1])


def test_int8_rows_round_trip_within_half_a_step():
    table = np.random.default_rng(0).normal(size=(50, 16)).astype(np.float32)
    table[3] = 0.0  # an all-zero row must not divide by zero
    q, scales = quantize_rows(table)
    assert q.dtype == np.int8 and scales.shape == (50, 1)
    assert np.all(np.abs(q.astype(np.float32) * scales - table) <= scales / 2 + 1e-7)


def test_variant_rejects_unknown_settings():
    with pytest.raises(ConfigError, match="weights"):
        Variant("x", weights="int3")
    with pytest.raises(ConfigError, match="embeddings"):
        Variant("x", embeddings="bf16")
    with pytest.raises(ConfigError, match="block_size"):
        Variant("x", block_size=48)
    with pytest.raises(ConfigError, match="smoothing applies to int8-dynamic weights only, got weights 'int4-block'"):
        Variant("x", weights="int4-block", smoothing=True)


def test_default_variants_have_unique_names_and_lookup_works():
    names = [v.name for v in default_variants()]
    assert len(names) == len(set(names))
    assert [v.name for v in variants_by_name(names[:2])] == names[:2]
    with pytest.raises(ConfigError, match="unknown variants"):
        variants_by_name(["nope"])


def test_student_variants_are_known_only_for_students_named():
    names = [v.name for v in student_variants(3)]
    assert names == [
        "L3-int8-opt",
        "L3-int8",
        "L3-smooth-int8-opt",
        "L3-pruned-int8-opt",
        "L3-pruned5k-int8-opt",
        "L3-pruned-int4-b128-opt",
    ]
    assert all(v.layers == 3 for v in student_variants(3))
    assert [v.name for v in variants_by_name(names, students=(3,))] == names
    with pytest.raises(ConfigError, match="unknown variants"):
        variants_by_name(names)  # no 3-layer student in this run
    with pytest.raises(ConfigError, match="layers"):
        Variant("x", layers=-1)


def test_a_student_variant_without_its_student_names_the_command(tmp_path: Path):
    with pytest.raises(ConfigError, match="shrink --run .* --layers 3"):
        source_layout(RunLayout(tmp_path), student_variants(3)[0])
    assert source_layout(RunLayout(tmp_path), Variant("plain")).root == tmp_path


def _candidate(name: str, size: float, qualifies: bool, p95: float | None = None) -> Candidate:
    return Candidate(Variant(name), Path(name), size, 0.9, 0.0, qualifies, p95)


def test_fastest_qualifying_ignores_rejected_and_untimed_ones_and_breaks_ties_by_size():
    candidates = [_candidate("a", 20, True, 3.0), _candidate("b", 17, False, 2.0), _candidate("c", 19, True, 2.5)]
    assert fastest_qualifying([*candidates, _candidate("d", 1, True)]).variant.name == "c"  # type: ignore[union-attr]
    tie = fastest_qualifying([_candidate("big", 20, True, 2.5), _candidate("small", 19, True, 2.5)])
    assert tie is not None and tie.variant.name == "small"
    assert fastest_qualifying([_candidate("b", 17, False, 2.0)]) is None


def test_an_unknown_preference_is_refused():
    assert check_preference("speed") == "speed"
    with pytest.raises(ConfigError, match=r"prefer must be one of \('size', 'speed'\), got 'fast'"):
        check_preference("fast")


def test_smallest_qualifying_ignores_rejected_ones():
    chosen = smallest_qualifying([_candidate("a", 5, True), _candidate("b", 3, False), _candidate("c", 4, True)])
    assert chosen is not None and chosen.variant.name == "c"
    assert smallest_qualifying([_candidate("b", 3, False)]) is None


def test_within_drop_and_nan():
    assert within_drop(0.90, 0.896, 0.005)
    assert not within_drop(0.90, 0.89, 0.005)
    assert not within_drop(0.90, float("nan"), 0.005)


def test_buckets():
    assert bucket_length(11, (16, 32)) == 16
    assert bucket_length(40, (16, 32)) == 40
    assert bucket_length(7, ()) == 7
    assert suggested_buckets(128) == (16, 32, 64, 128)
    assert suggested_buckets(64, smallest=16) == (16, 32, 64)


def test_softmax_row_sums_to_one():
    p = softmax_row(np.array([1.0, 2.0, 3.0]), 2.0)
    assert p.sum() == pytest.approx(1.0) and p.argmax() == 2
