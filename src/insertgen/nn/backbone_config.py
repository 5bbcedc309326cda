"""Options every model shares: the size of its Transformer backbone and its buffer, with their checks,
and conversion from / to the plain dicts of config.json."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from insertgen.core.options import from_dict


@dataclass
class BackboneConfig:
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.0
    max_len: int = 64  # [prompt, BOS, target, EOS] must fit; also the sampling length cap
    token_shift: bool = False  # add an embedding of the previous token to each position (nn/transformer.py)
    absolute_positions: bool = False  # add a learned embedding of the index among real tokens
    position_period: int = 0  # > 0: add a learned embedding of that index modulo this period (0 = off)

    def __post_init__(self):
        if min(self.d_model, self.n_layers, self.n_heads, self.mlp_ratio, self.max_len) < 1:
            raise ValueError("sizes (d_model, n_layers, n_heads, mlp_ratio, max_len) must be positive")
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise ValueError(f"d_model={self.d_model} must split into n_heads={self.n_heads} heads of even size")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")
        if self.position_period < 0 or self.position_period >= self.max_len:
            raise ValueError(f"position_period={self.position_period} must be 0 (off) or a period below "
                             f"max_len={self.max_len}")

    @classmethod
    def from_dict(cls, d: dict):
        """``cls(**d)`` with every key and value type checked (:func:`insertgen.core.options.from_dict`)."""
        return from_dict(cls, d)

    def to_dict(self) -> dict:
        return asdict(self)

    def input_options(self) -> dict:
        """The options of the main trunk's input embedding (:class:`~insertgen.nn.transformer.TransformerConfig`)."""
        return {"token_shift": self.token_shift, "absolute_positions": self.absolute_positions,
                "position_period": self.position_period}
