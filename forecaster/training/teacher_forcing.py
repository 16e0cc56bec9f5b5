"""Scheduled sampling: how often a decoder in training reads the true previous value rather than
its own previous prediction, epoch by epoch (Bengio et al., 2015).

Training only on true previous values (teacher forcing) never shows the decoder its own errors,
which it then feeds back at every forecast. A schedule starts at 1.0 (all true values) and decays
to a floor over epochs, so the decoder learns first and then practises on its own predictions.

`TeacherForcing.ratio(epoch)` is the reference; the graph evaluates the same formula from its
step counter (forecaster.models.seq2seq.inputs), and a test holds the two together. No
TensorFlow here: the config schema imports this.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from forecaster.errors import ConfigError

DECAYS = ("constant", "linear", "inverse_sigmoid")


@dataclass(frozen=True)
class TeacherForcing:
    """`ratio`: the constant share of true inputs, or the floor a decay ends at. `epochs`: for
    `linear`, the epochs it takes to reach the floor; for `inverse_sigmoid`, its k (the ratio is
    about half-way down after k * ln k epochs)."""

    ratio: float = 1.0
    decay: str = "constant"
    epochs: float = 10.0

    def __post_init__(self) -> None:
        if not (isinstance(self.ratio, int | float) and 0.0 <= self.ratio <= 1.0):
            raise ConfigError(
                f"train.teacher_forcing={self.ratio!r} is invalid: expected a share of true "
                "decoder inputs in [0, 1] (1.0: teacher forcing, 0.0: the model's own "
                "predictions throughout)."
            )
        if self.decay not in DECAYS:
            raise ConfigError(
                f"train.teacher_forcing_decay={self.decay!r} is invalid: expected one of {DECAYS}."
            )
        minimum = 1.0 if self.decay == "inverse_sigmoid" else 0.0
        if not (math.isfinite(self.epochs) and self.epochs > minimum):
            raise ConfigError(
                f"train.teacher_forcing_epochs={self.epochs!r} is invalid: expected a number > "
                f"{minimum:g} for train.teacher_forcing_decay={self.decay}."
            )

    @property
    def always(self) -> bool:
        """True when every step of every epoch reads the true value (plain teacher forcing)."""
        return self.decay == "constant" and self.ratio == 1.0

    def ratio_at(self, epoch: float) -> float:
        """The share of true inputs in (0-based) `epoch`."""
        floor = self.ratio
        if self.decay == "constant":
            return floor
        if self.decay == "linear":
            return max(floor, 1.0 - (1.0 - floor) * epoch / self.epochs)
        k = self.epochs
        return floor + (1.0 - floor) * (k + 1.0) / (k + math.exp(epoch / k))
