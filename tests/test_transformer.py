"""The shared Transformer trunk: causal masking, padding, RoPE relative positions, zero-init adaLN."""

import pytest
import torch

from insertgen.nn.heads import RateHead, TokenHead
from insertgen.nn.transformer import Transformer, TransformerConfig


def make(causal=False, time=True, seed=0):
    torch.manual_seed(seed)
    return Transformer(TransformerConfig(vocab_size=12, d_model=32, n_layers=2, n_heads=4, causal=causal,
                                         time_conditioning=time, d_cond=16)).eval()


def test_causal_mode_never_looks_ahead():
    net = make(causal=True)
    x = torch.randint(4, 12, (2, 10))
    mask = torch.ones_like(x, dtype=torch.bool)
    h, _ = net(x, mask)
    y = x.clone()
    y[:, 6:] = torch.randint(4, 12, (2, 4))
    h2, _ = net(y, mask)
    assert torch.allclose(h[:, :6], h2[:, :6], atol=1e-5)
    assert not torch.allclose(h[:, 6:], h2[:, 6:], atol=1e-3)


def test_bidirectional_mode_sees_everything():
    net = make()
    x = torch.randint(4, 12, (1, 8))
    mask = torch.ones_like(x, dtype=torch.bool)
    y = x.clone()
    y[0, -1] = (x[0, -1] - 4 + 1) % 8 + 4
    h, _ = net(x, mask)
    h2, _ = net(y, mask)
    assert not torch.allclose(h[:, 0], h2[:, 0], atol=1e-4)


def test_padding_is_invisible():
    net = make()
    x = torch.randint(4, 12, (1, 6))
    padded = torch.cat([x, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    junk = torch.cat([x, torch.randint(4, 12, (1, 4))], dim=1)  # same keys masked out, different content
    mask = torch.arange(10)[None] < 6
    h1, _ = net(padded, mask)
    h2, _ = net(junk, mask)
    h0, _ = net(x, torch.ones_like(x, dtype=torch.bool))
    assert torch.allclose(h1[:, :6], h2[:, :6], atol=1e-5)
    assert torch.allclose(h1[:, :6], h0, atol=1e-5)


def test_positions_count_real_tokens_only():
    """RoPE positions are cumsum(mask) - 1: a left-padded copy gives the same states as the unpadded one."""
    net = make()
    x = torch.randint(4, 12, (1, 5))
    left = torch.cat([torch.zeros(1, 3, dtype=torch.long), x], dim=1)
    mask = torch.arange(8)[None] >= 3
    h_left, _ = net(left, mask)
    h, _ = net(x, torch.ones_like(x, dtype=torch.bool))
    assert torch.allclose(h_left[:, 3:], h, atol=1e-5)


def test_zero_initialised_time_conditioning_and_heads():
    net = make()
    x = torch.randint(4, 12, (3, 7))
    mask = torch.ones_like(x, dtype=torch.bool)
    h_a, c_a = net(x, mask, torch.tensor([0.1, 0.5, 0.9]))
    h_b, c_b = net(x, mask, torch.tensor([0.9, 0.2, 0.3]))
    assert torch.allclose(h_a, h_b, atol=1e-6)  # modulation starts at zero: t has no effect yet
    head = TokenHead(32, 12, d_cond=16)
    assert torch.count_nonzero(head(h_a, c_a)) == 0  # uniform initial token distribution
    rates = RateHead(32, d_cond=16, min_rate=0.0, max_rate=10.0)(h_a, c_a)
    assert rates.dtype == torch.float32 and torch.all(rates > 0) and torch.all(rates < 10 * 0.1)


def test_input_options_start_as_the_plain_model_and_then_matter():
    """token_shift / absolute_positions / position_period are zero tables made without random draws: a fresh model computes
    what the plain model of the same seed computes; once the tables are non-zero, the previous token (and
    only the previous real one) and the position change the states."""
    tokens = torch.tensor([[5, 6, 7, 8, 0, 0]])
    mask = tokens != 0
    torch.manual_seed(0)
    plain = Transformer(TransformerConfig(vocab_size=10, d_model=16, n_layers=1, n_heads=2, time_conditioning=False))
    torch.manual_seed(0)
    shifted = Transformer(TransformerConfig(vocab_size=10, d_model=16, n_layers=1, n_heads=2, time_conditioning=False,
                                            token_shift=True, absolute_positions=True, position_period=2))
    with torch.no_grad():
        assert torch.equal(plain(tokens, mask)[0], shifted(tokens, mask)[0])
        shifted.previous.weight.normal_()
        a = shifted(tokens, mask)[0]
        b = shifted(torch.tensor([[5, 9, 7, 8, 0, 0]]), mask)[0]  # token 1 changed: position 2 sees it too
        assert not torch.allclose(a[0, 2], b[0, 2])
        left = shifted(torch.tensor([[0, 5, 6, 7, 8]]), torch.tensor([[False, True, True, True, True]]))[0]
        assert torch.allclose(left[0, 1:], a[0, :4], atol=1e-5)  # padding before a token is "no previous"
        shifted.previous.weight.zero_()
        shifted.position.weight.normal_()
        assert not torch.allclose(shifted(tokens, mask)[0], plain(tokens, mask)[0])
        shifted.position.weight.zero_()
        phase = torch.randn(2, 16)
        shifted.phase.weight.copy_(phase)  # the same as an absolute table repeating the period's rows
        by_phase = shifted(tokens, mask)[0]
        assert not torch.allclose(by_phase, plain(tokens, mask)[0])
        shifted.phase.weight.zero_()
        shifted.position.weight.copy_(phase.repeat(shifted.position.weight.shape[0] // 2, 1))
        assert torch.allclose(by_phase[mask], shifted(tokens, mask)[0][mask], atol=1e-5)


def test_position_period_is_checked():
    from insertgen.nn.backbone_config import BackboneConfig

    for bad in (-1, 64):
        with pytest.raises(ValueError, match="position_period"):
            BackboneConfig(max_len=64, position_period=bad)


def test_zero_residual_gate_starts_every_block_as_the_identity():
    """residual_gate="zero" (adaLN-Zero): a fresh time-conditioned trunk is the final norm of its input
    embedding, whatever the blocks hold; "one_plus" (the default) is not. Once the gates move, the blocks
    and the time matter; the option is refused where no time gates the blocks."""
    torch.manual_seed(0)
    net = Transformer(TransformerConfig(vocab_size=12, d_model=32, n_layers=2, n_heads=4, d_cond=16,
                                        residual_gate="zero"))
    x = torch.randint(4, 12, (3, 7))
    mask = torch.ones_like(x, dtype=torch.bool)
    t = torch.tensor([0.1, 0.5, 0.9])
    with torch.no_grad():
        identity = net.norm(net.embed(x))
        assert torch.allclose(net(x, mask, t)[0], identity, atol=1e-6)
        assert not torch.allclose(make()(x, mask, t)[0], make().norm(make().embed(x)), atol=1e-3)
        net.blocks[0].modulation.bias.normal_()
        net.blocks[0].modulation.weight.normal_()
        h_a, h_b = net(x, mask, t)[0], net(x, mask, torch.tensor([0.9, 0.2, 0.3]))[0]
        assert not torch.allclose(h_a, identity, atol=1e-3) and not torch.allclose(h_a, h_b, atol=1e-3)
    with pytest.raises(ValueError, match="residual_gate"):
        TransformerConfig(vocab_size=12, residual_gate="half")
    with pytest.raises(ValueError, match="time-conditioned"):
        TransformerConfig(vocab_size=12, time_conditioning=False, residual_gate="zero")
    from insertgen.models.flexmdm.model import FlexMDMConfig

    with pytest.raises(ValueError, match="residual_gate"):
        FlexMDMConfig(residual_gate="one")
