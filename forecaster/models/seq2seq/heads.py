"""The decoder's distributional output heads (`model.output` = quantiles or student_t), in graph.

A head reads the projection of the top decoder layer's `h`, ``raw`` [..., P] (P numbers per
step, `outputs.num_params`), and says what they mean: the distribution of ``U_k = S_k /
sqrt(k)``, the cumulative scaled return from the origin to step k in units of ``sqrt(k)``
(`outputs` explains why). From it come the loss the network is trained on, the median the
autoregressive decoder feeds back, and the `distribution` output in ``S_k`` units that
`outputs.cumulative_quantiles` turns into quantiles.

- quantiles: ``raw[..., 0]`` is the median; the levels above it are the median plus cumulative
  sums of softplus of the next outputs, the levels below it the median minus such sums, so the
  quantiles never cross, whatever the weights. Loss: the pinball loss averaged over levels,
  steps and windows.
- student_t: location ``raw[..., 0]``, scale ``softplus(raw[..., 1]) + MIN_SCALE``, degrees of
  freedom ``2 + softplus(raw[..., 2])`` (a finite variance). Loss: the negative log-likelihood.

Builds ops only; creates no variables (the projection is `graph.Seq2SeqWeights`').
"""

from __future__ import annotations

import math
from collections.abc import Callable

import tensorflow as tf

from forecaster.models.base import MEDIAN
from forecaster.models.seq2seq.outputs import MIN_DF
from forecaster.models.seq2seq.spec import ModelSpec

MIN_SCALE = 1e-3  # a floor on the Student-t scale (in U units, ~1): keeps the likelihood finite


class OutputHead:
    """The meaning of the raw outputs of one `spec.output` other than `point`."""

    def __init__(self, spec: ModelSpec) -> None:
        self.output = spec.output
        self.levels = tuple(spec.quantiles)
        self.horizon = spec.horizon

    def median(self, raw: tf.Tensor) -> tf.Tensor:
        """[...]: the median of U (for both heads, ``raw[..., 0]``)."""
        return raw[..., 0]

    def loss(self, raw: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        """Scalar: the head's loss of raw outputs [B, H, P] against scaled per-bar targets
        [B, H] (turned into ``U_k`` here)."""
        u = tf.cumsum(targets, axis=1) / _sqrt_steps(self.horizon)
        if self.output == "quantiles":
            error = u[..., None] - self._quantiles(raw)
            tau = tf.constant(self.levels, tf.float32)
            return tf.reduce_mean(tf.maximum(tau * error, (tau - 1.0) * error))
        loc, scale, df = self._student_t(raw)
        z = (u - loc) / scale
        log_likelihood = (
            tf.math.lgamma((df + 1.0) / 2.0)
            - tf.math.lgamma(df / 2.0)
            - 0.5 * tf.math.log(df * math.pi)
            - tf.math.log(scale)
            - (df + 1.0) / 2.0 * tf.math.log1p(tf.square(z) / df)
        )
        return -tf.reduce_mean(log_likelihood)

    def distribution(self, raw: tf.Tensor) -> tf.Tensor:
        """[B, H, P]: the `distribution` output, in ``S_k`` units (`outputs` describes it)."""
        sqrt_k = _sqrt_steps(self.horizon)  # [H]
        if self.output == "quantiles":
            return self._quantiles(raw) * sqrt_k[:, None]
        loc, scale, df = self._student_t(raw)
        return tf.stack([loc * sqrt_k, scale * sqrt_k, df], axis=-1)

    def reader(
        self,
        project: Callable[[tf.Tensor], tf.Tensor],
        feedback: Callable[[tf.Tensor], tf.Tensor] = tf.identity,
    ):
        """For the autoregressive decoder: `read(h, k)` gives the next input and step k's raw
        outputs. The next input is the median path's scaled return of bar k (median ``S_k``
        minus median ``S_{k-1}``): one value per bar, like the returns the encoder reads.
        `feedback` wraps it (training passes `tf.stop_gradient`: the fed-back median is an
        input, not a second route for the loss)."""
        previous = [0.0]

        def read(h: tf.Tensor, k: int) -> tuple[tf.Tensor, tf.Tensor]:
            raw = project(h)
            median = self.median(raw) * math.sqrt(k)
            next_input = feedback(median - previous[0])
            previous[0] = median
            return next_input, raw

        return read

    def _quantiles(self, raw: tf.Tensor) -> tf.Tensor:
        """[..., Q] quantiles of U: the median, then cumulative softplus steps up and down."""
        above = len(self.levels) - 1 - self.levels.index(MEDIAN)
        median = raw[..., :1]
        up = median + tf.cumsum(tf.nn.softplus(raw[..., 1 : 1 + above]), axis=-1)
        down = median - tf.cumsum(tf.nn.softplus(raw[..., 1 + above :]), axis=-1)
        return tf.concat([tf.reverse(down, [-1]), median, up], axis=-1)

    def _student_t(self, raw: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        loc = raw[..., 0]
        scale = tf.nn.softplus(raw[..., 1]) + MIN_SCALE
        df = MIN_DF + tf.nn.softplus(raw[..., 2])
        return loc, scale, df


def _sqrt_steps(horizon: int) -> tf.Tensor:
    return tf.sqrt(tf.range(1, horizon + 1, dtype=tf.float32))  # [H]
