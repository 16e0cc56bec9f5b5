"""Consecutive chunks of a training series, for training with the encoder state carried
(`train.carry=true`: truncated backpropagation through time).

The training part of the scaled target series `y[:train_stop]` is cut into `streams` contiguous,
equally long segments (the streams), each into `chunks` consecutive chunks of `chunk_length`
bars. Batch `b` holds chunk `b` of every stream, so visiting the batches in order walks every
stream forward in time, side by side; the state a stream's chunk ends with is the state its next
chunk starts from. Each chunk is one training example: its bars are the encoder's inputs, the
`horizon` bars after its last bar the decoder's targets (as a window's are after its origin).

The streams end where the last chunk's targets end at `train_stop`; bars left over by the
division go before the first stream (they only warm its state up). Nothing at or after
`train_stop` (validation, test) is in any chunk's inputs or targets: `tests/test_carry.py`
guards it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from forecaster.errors import ConfigError


@dataclass(frozen=True)
class ChunkSet:
    """Rows `b * streams + k` are chunk `b` of stream `k` (batch-major, time order)."""

    inputs: np.ndarray  # [chunks * streams, chunk_length, 1] float32 scaled y
    targets: np.ndarray  # [chunks * streams, horizon] float32: the bars after each chunk
    starts: np.ndarray  # [streams] y-index of each stream's first bar
    chunks: int  # chunks per stream: batches per epoch
    chunk_length: int

    @property
    def streams(self) -> int:
        return len(self.starts)

    def __len__(self) -> int:
        return len(self.inputs)

    def chunk_start(self, row: int) -> int:
        """The y-index of row `row`'s first bar."""
        batch, stream = divmod(row, self.streams)
        return int(self.starts[stream]) + batch * self.chunk_length


def make_chunks(
    scaled: np.ndarray, train_stop: int, *, chunk_length: int, horizon: int, streams: int
) -> ChunkSet:
    """Cut `scaled[:train_stop]` (the training part of the scaled target) into streams of
    consecutive chunks; see the module docstring."""
    scaled = np.asarray(scaled, dtype=np.float32)
    usable = train_stop - horizon  # the bars a chunk's inputs can use: targets stay in train
    chunks = usable // (streams * chunk_length)
    if chunks < 1:
        raise ConfigError(
            f"train.carry=true needs at least one chunk per stream: the training part has "
            f"{train_stop} bars, {usable} before its last horizon, fewer than train.streams "
            f"({streams}) x train.chunk_length ({chunk_length}); lower train.streams or "
            "train.chunk_length, or give the training part more bars."
        )
    first = usable - streams * chunks * chunk_length  # leftover bars: warm-up of stream 0
    starts = first + np.arange(streams) * chunks * chunk_length
    begins = (starts[None, :] + np.arange(chunks)[:, None] * chunk_length).ravel()
    inputs = scaled[begins[:, None] + np.arange(chunk_length)][:, :, None]
    targets = scaled[begins[:, None] + chunk_length + np.arange(horizon)]
    return ChunkSet(inputs, targets, starts, chunks, chunk_length)
