"""Layer reduction of an encoder (the student ``shrink`` distills)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import BertConfig, BertModel

from hybridroute.errors import ConfigError
from hybridroute.training.models import keep_bottom_layers, transformer_layers


def _bert(layers: int) -> BertModel:
    config = BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=32
    )
    return BertModel(config).eval()


def test_keeps_the_bottom_layers_with_their_weights():
    torch.manual_seed(0)
    encoder = _bert(4)
    kept = [layer.attention.self.query.weight.clone() for layer in transformer_layers(encoder)[:2]]
    keep_bottom_layers(encoder, 2)
    assert len(transformer_layers(encoder)) == 2 and encoder.config.num_hidden_layers == 2
    for layer, weight in zip(transformer_layers(encoder), kept, strict=True):
        assert torch.equal(layer.attention.self.query.weight, weight)


def test_the_cut_model_computes_what_the_first_layers_computed():
    torch.manual_seed(0)
    encoder = _bert(3)
    ids = torch.tensor([[1, 5, 7, 2]])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        full = encoder(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        cut = keep_bottom_layers(encoder, 2)(input_ids=ids, attention_mask=mask).last_hidden_state
    assert torch.allclose(cut, full[2], atol=1e-6)


@pytest.mark.parametrize("layers", [0, 5])
def test_rejects_impossible_depths(layers: int):
    with pytest.raises(ConfigError, match="between 1 and the encoder's 4 layers"):
        keep_bottom_layers(_bert(4), layers)


def test_rejects_an_encoder_without_a_bert_style_stack():
    with pytest.raises(ConfigError, match="encoder.layer"):
        transformer_layers(nn.Linear(2, 2))
