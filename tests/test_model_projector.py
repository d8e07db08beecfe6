"""Projectors: shapes, masks, standardisation, batch = alone."""

from __future__ import annotations

import pytest
import torch

from mllm.core.model.projector import Projector, ProjectorConfig


@pytest.mark.parametrize("kind, expected_t", [("linear", 10), ("mlp", 10), ("strided", 3)])
def test_shapes(kind, expected_t):
    projector = Projector(ProjectorConfig(input_dim=6, output_dim=16, kind=kind, stride=4))
    tokens, mask = projector(torch.randn(2, 10, 6))
    assert tokens.shape == (2, expected_t, 16) and mask.shape == (2, expected_t) and mask.all()
    assert projector.output_length(10) == expected_t


def test_mlp_has_two_layers_with_gelu():
    projector = Projector(ProjectorConfig(input_dim=6, output_dim=16, kind="mlp", hidden_dim=8))
    linear = [m for m in projector.net if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(6, 8), (8, 16)]
    assert any(isinstance(m, torch.nn.GELU) for m in projector.net)


@pytest.mark.parametrize("merge, head", [("concat", "linear"), ("concat", "mlp"), ("mean", "linear")])
def test_strided_batch_equals_alone(merge, head):
    torch.manual_seed(0)
    projector = Projector(ProjectorConfig(input_dim=3, output_dim=8, kind="strided", stride=4, merge=merge, head=head))
    clips = [torch.randn(t, 3) for t in (9, 4, 13)]
    frames = torch.zeros(3, 13, 3)
    mask = torch.zeros(3, 13, dtype=torch.bool)
    for i, clip in enumerate(clips):
        frames[i, :len(clip)] = clip + 0.0
        frames[i, len(clip):] = 99.0  # garbage in the padding must not leak
        mask[i, :len(clip)] = True
    tokens, token_mask = projector(frames, mask)
    assert token_mask.sum(1).tolist() == [3, 1, 4]
    for i, clip in enumerate(clips):
        alone, alone_mask = projector(clip[None])
        n = projector.output_length(len(clip))
        assert alone.shape[1] == n and alone_mask.all()
        torch.testing.assert_close(tokens[i, :n], alone[0], rtol=0, atol=1e-6)


def test_mean_merge_averages_real_frames_only():
    projector = Projector(ProjectorConfig(input_dim=1, output_dim=1, kind="strided", stride=3, merge="mean",
                                          head="linear"))
    with torch.no_grad():
        projector.net.weight.fill_(1.0)
        projector.net.bias.zero_()
    tokens, _ = projector(torch.tensor([[[1.0], [2.0], [3.0], [10.0]]]))
    assert tokens.flatten().tolist() == [2.0, 10.0]  # last group: one real frame, not (10+0+0)/3


def test_standardization():
    projector = Projector(ProjectorConfig(input_dim=2, output_dim=2, kind="linear"))
    with torch.no_grad():
        projector.net.weight.copy_(torch.eye(2))
        projector.net.bias.zero_()
    projector.set_standardization(torch.tensor([-60.0, 1.0]), torch.tensor([20.0, 0.0]))
    tokens, _ = projector(torch.tensor([[[-40.0, 1.0]]]))
    assert tokens.flatten().tolist() == [1.0, 0.0]  # std floored, no division by zero
    assert set(projector.state_dict()) >= {"mean", "std"}


def test_bad_config():
    with pytest.raises(ValueError):
        ProjectorConfig(input_dim=2, output_dim=2, kind="conv")
    with pytest.raises(ValueError):
        ProjectorConfig(input_dim=2, output_dim=2, kind="strided", stride=0)
