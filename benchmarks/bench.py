"""Benchmark: our TF1-graph seq2seq LSTM against the fastest peers we know, in one process.

Run it from the repository root with `python benchmarks/bench.py`; `--help` lists flags. Its
peers come with the `bench` extra (`pip install -e ".[bench]"`: Keras 3 and a CPU build of
PyTorch, pinned).

What is measured, per workload and implementation:

- training throughput: windows/second of one optimiser step (teacher-forced MSE, Adam, gradient
  clipping by global norm) on random float32 data;
- inference latency: milliseconds of one autoregressive forecast call for a single window and for
  a batch (256 windows by default), numpy in and numpy out, as a caller sees it;
- start-up: seconds from nothing to the end of the first train step (graph building, tracing,
  XLA compilation, first-call allocation): what every model of a sweep or a backtest fold pays.

Implementations (every one is the same encoder-decoder: `num_layers` LSTM layers whose final
`(c, h)` start the decoder layer by layer, teacher forcing from the last observed target, a
linear projection of the top decoder layer, MSE, Adam with the same learning rate and global
clipping norm; the forecast feeds each prediction back as the next input):

- `ours/<encoder>`: `Seq2SeqModel` with each `model.encoder`
  (`forecaster.models.seq2seq.lstm.SEQUENCE_IMPLEMENTATIONS`), as `python -m forecaster train`
  runs it;
- `keras/step`: Keras 3 `LSTM` layers trained by a hand-written `tf.function` step
  (GradientTape, `optimizer.apply`); the forecast is a `tf.function` over the cells;
- `keras/step+xla`: the same functions compiled by XLA (`jit_compile=True`);
- `keras/unroll`: `LSTM(unroll=True)` (a static Python loop instead of a while loop), the same
  hand-written step without XLA;
- `torch/1t`, `torch/2t`: PyTorch `nn.LSTM` encoder and decoder with 1 and 2 intra-op threads,
  eager, as a PyTorch user writes it (`loss.backward()`, `clip_grad_norm_`, `Adam.step()`;
  inference under `torch.inference_mode()`).

Method: before anything is timed, a tiny model of every implementation is built and run once, so
one-time library initialisation is not charged to whichever implementation happens to come
first. Then each implementation of a workload is built (start-up is timed here, one sample per
implementation) and warmed up, and timed in interleaved rounds: each round times every
implementation once, so a slow period on a shared machine hits all of them rather than whichever
was running. A round times `--steps` consecutive train steps (one throughput sample) and
`--infer-calls` forecast calls per batch size (one latency sample each). Figures are medians;
`±` is half the interquartile range as a percentage of the median.

Ratios compare each of ours with the fastest peer of the same run, figure by figure (the peer
may differ per figure, and its name is printed): for throughput ours / peer (> 1: ours faster),
for latency and start-up peer / ours (> 1: ours faster), so every ratio reads "times as fast".

Threads: our Session takes `intra_op_threads`/`inter_op_threads` in its `ConfigProto`; Keras runs
in TF's eager context, whose thread pools are fixed once the context initialises, so the
benchmark sets them before creating any eager tensor and reads them back (and refuses to run if
the context already runs with other counts). PyTorch's thread count is set before each of its
timed sections.

Caveats: random data (LSTM cost does not depend on values); one machine, wall-clock time, so
other load on the machine adds noise (the report prints load averages and how many CPUs other
processes kept busy during the run; look at `±` too). An implementation that spreads over both
threads suffers more from such load than one that mostly uses one.
"""

from __future__ import annotations

import os

# Before TensorFlow loads (Keras imports it): its C++ log would otherwise print notes on every
# call of some kernels.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass, replace  # noqa: E402
from typing import Protocol  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from forecaster.models.seq2seq.lstm import SEQUENCE_IMPLEMENTATIONS  # noqa: E402
from forecaster.models.seq2seq.network import Seq2SeqModel  # noqa: E402
from forecaster.models.seq2seq.spec import ModelSpec  # noqa: E402
from forecaster.training.precision import cpu_model, vector_extensions  # noqa: E402

OURS_PREFIX = "ours/"


@dataclass(frozen=True)
class Workload:
    """One model shape and batch size. `infer_batch` is the larger inference batch."""

    name: str
    batch: int
    lookback: int
    horizon: int
    num_features: int
    num_units: int
    num_layers: int
    infer_batch: int = 256

    def describe(self) -> str:
        return (
            f"{self.name}: train batch {self.batch}, lookback {self.lookback}, "
            f"horizon {self.horizon}, {self.num_features} input features, "
            f"{self.num_layers} layer(s) x {self.num_units} units"
        )


WORKLOADS = {
    # The shape `python -m forecaster train` runs by default (conf/).
    "default": Workload(
        "default", batch=64, lookback=60, horizon=5, num_features=1, num_units=64, num_layers=1
    ),
    "W1": Workload(
        "W1", batch=256, lookback=60, horizon=20, num_features=5, num_units=64, num_layers=1
    ),
    # W2 keeps W1's five input features.
    "W2": Workload(
        "W2", batch=64, lookback=120, horizon=20, num_features=5, num_units=128, num_layers=2
    ),
}


def quick(workload: Workload) -> Workload:
    """A tiny version of `workload` with the same number of layers: for smoke tests only."""
    return replace(
        workload, batch=8, lookback=12, horizon=4, num_features=2, num_units=8, infer_batch=16
    )


@dataclass(frozen=True)
class Settings:
    """How long to measure, and with how many threads."""

    rounds: int = 10  # interleaved rounds; each yields one throughput sample per implementation
    steps: int = 10  # timed train steps per round
    infer_calls: int = 10  # timed forecast calls per batch size per round
    warmup: int = 3  # untimed train steps and forecast calls per batch size, before round 1
    intra_op: int = 2  # ours and Keras; PyTorch runs with 1 and with 2
    inter_op: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        for key in ("rounds", "steps", "infer_calls"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}={getattr(self, key)!r} is invalid: expected >= 1.")
        if self.warmup < 0:
            raise ValueError(f"warmup={self.warmup!r} is invalid: expected >= 0.")


@dataclass(frozen=True)
class Timing:
    """Samples of one figure (windows/s, ms or s); the median is what gets reported."""

    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def spread(self) -> float:
        """Half the interquartile range relative to the median (0.05 = ±5%).

        Quartiles rather than min-max: one call preempted by another process should widen the
        spread a little, not dominate it.
        """
        if len(self.samples) < 2:
            return 0.0
        q1, _, q3 = statistics.quantiles(self.samples, n=4)
        return (q3 - q1) / 2 / self.median


@dataclass(frozen=True)
class Measurement:
    workload: Workload
    implementation: str  # "ours/<encoder>" or a peer's name
    train_windows_per_s: Timing
    infer_ms_one: Timing  # one window
    infer_ms_batch: Timing  # workload.infer_batch windows
    startup_s: Timing  # build + first train step

    @property
    def is_ours(self) -> bool:
        return self.implementation.startswith(OURS_PREFIX)


# What each figure is, and which way is faster.
FIGURES = {
    "train": ("train_windows_per_s", True),  # higher is faster
    "infer_one": ("infer_ms_one", False),
    "infer_batch": ("infer_ms_batch", False),
    "startup": ("startup_s", False),
}


@dataclass(frozen=True)
class Comparison:
    """One of ours against the fastest peer of the same run, for one figure."""

    figure: str
    peer: str  # the fastest peer's name
    ratio: float  # "times as fast": > 1 means ours is faster


def against_fastest_peer(ours: Measurement, peers: Sequence[Measurement]) -> list[Comparison]:
    """Ours vs the fastest peer, figure by figure (the fastest peer may differ per figure)."""
    comparisons = []
    for figure, (attribute, higher_is_faster) in FIGURES.items():

        def median(m: Measurement, attribute: str = attribute) -> float:
            return getattr(m, attribute).median

        if higher_is_faster:
            best = max(peers, key=median)
            ratio = median(ours) / median(best)
        else:
            best = min(peers, key=median)
            ratio = median(best) / median(ours)
        comparisons.append(Comparison(figure, best.implementation, ratio))
    return comparisons


# -- threads -------------------------------------------------------------------------------------
def configure_threads(intra_op: int, inter_op: int) -> None:
    """Give TF's eager context (where Keras runs) the thread counts our Session gets.

    Must run before the eager context initialises (the first eager tensor); afterwards it only
    accepts the counts already in effect, and refuses to compare unequal thread budgets.
    """
    current = (
        tf.config.threading.get_intra_op_parallelism_threads(),
        tf.config.threading.get_inter_op_parallelism_threads(),
    )
    if current == (intra_op, inter_op):
        # Also the only safe path after initialisation: TF's setters compare against the
        # value last set, not the one in effect, so re-setting an unset default (0) raises.
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError as error:
        raise RuntimeError(
            f"TensorFlow's eager context already runs with intra-op/inter-op threads {current}; "
            f"cannot switch to ({intra_op}, {inter_op}). Call the benchmark before any other "
            "TensorFlow eager work, or pass the current counts."
        ) from error


# -- the implementations behind one interface ----------------------------------------------------
class Runner(Protocol):
    def enter(self) -> None: ...  # before each timed section (PyTorch sets its threads here)
    def train_step(self, inputs: np.ndarray, targets: np.ndarray) -> float: ...
    def forecast(self, inputs: np.ndarray) -> np.ndarray: ...
    def close(self) -> None: ...


class OursRunner:
    """`Seq2SeqModel` as a caller uses it: numpy in, numpy out, one Session per model."""

    def __init__(self, workload: Workload, encoder: str, settings: Settings) -> None:
        spec = ModelSpec(
            horizon=workload.horizon,
            num_features=workload.num_features,
            num_units=workload.num_units,
            num_layers=workload.num_layers,
            encoder=encoder,
        )
        self.model = Seq2SeqModel(
            spec,
            seed=settings.seed,
            intra_op_threads=settings.intra_op,
            inter_op_threads=settings.inter_op,
        )

    def enter(self) -> None:
        pass

    def train_step(self, inputs: np.ndarray, targets: np.ndarray) -> float:
        return self.model.train_step(inputs, targets)

    def forecast(self, inputs: np.ndarray) -> np.ndarray:
        return self.model.forecast(inputs).forecast

    def close(self) -> None:
        self.model.close()


class KerasRunner:
    """The Keras 3 peer: same shape, same decoder inputs, same loss and optimiser.

    `xla` compiles the train step and the forecast with XLA; `unroll` builds every LSTM layer
    with `unroll=True` (a static loop over time).
    """

    def __init__(
        self, workload: Workload, settings: Settings, *, xla: bool = False, unroll: bool = False
    ) -> None:
        spec = ModelSpec(horizon=workload.horizon)  # only for the shared optimiser defaults
        w = workload
        keras.utils.set_random_seed(settings.seed)  # initial weights, as ours are seeded
        self.horizon = w.horizon
        encoder_inputs = keras.Input((w.lookback, w.num_features))
        targets = keras.Input((w.horizon,))

        # Encoder: every layer hands its final [h, c] over, like ours does layer k to layer k.
        x, states = encoder_inputs, []
        for k in range(w.num_layers):
            last = k == w.num_layers - 1
            x, h, c = keras.layers.LSTM(
                w.num_units,
                return_sequences=not last,
                return_state=True,
                unroll=unroll,
                name=f"encoder_{k}",
            )(x)
            states.append([h, c])
        # Flat outputs [h_0, c_0, h_1, c_1, ...]: Keras does not keep nested lists as outputs.
        self.encoder = keras.Model(encoder_inputs, [t for state in states for t in state])

        # Teacher forcing built in the model, as in our graph (which is also fed the targets):
        # the last observed target, then the true targets.
        previous_true = keras.ops.concatenate([encoder_inputs[:, -1:, 0], targets[:, :-1]], axis=1)[
            :, :, None
        ]
        self.decoder_layers = [
            keras.layers.LSTM(
                w.num_units, return_sequences=True, unroll=unroll, name=f"decoder_{k}"
            )
            for k in range(w.num_layers)
        ]
        self.projection = keras.layers.Dense(1, name="projection")
        y = previous_true
        for layer, state in zip(self.decoder_layers, states, strict=True):
            y = layer(y, initial_state=state)
        outputs = keras.layers.Reshape((w.horizon,))(self.projection(y))
        self.model = keras.Model([encoder_inputs, targets], outputs)
        self.optimizer = keras.optimizers.Adam(spec.learning_rate, global_clipnorm=spec.clip_norm)
        self.optimizer.build(self.model.trainable_variables)

        # Fixed signatures: one trace, never a retrace inside the timed region. No AutoGraph,
        # as in Keras's own compiled functions: the decode loop is meant to stay Python.
        inputs_spec = tf.TensorSpec([None, w.lookback, w.num_features], tf.float32)
        self._train = tf.function(
            self._train_step,
            input_signature=[inputs_spec, tf.TensorSpec([None, w.horizon], tf.float32)],
            autograph=False,
            jit_compile=xla,
        )
        self._forecast = tf.function(
            self._decode, input_signature=[inputs_spec], autograph=False, jit_compile=xla
        )

    def _train_step(self, inputs: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            outputs = self.model([inputs, targets], training=True)
            loss = tf.reduce_mean(tf.square(outputs - targets))
        self.optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    def _decode(self, inputs: tf.Tensor) -> tf.Tensor:
        flat = self.encoder(inputs, training=False)
        states = [list(flat[k : k + 2]) for k in range(0, len(flat), 2)]
        prediction = inputs[:, -1, :1]  # [B, 1]: the last observed target
        predictions = []
        # A Python loop, like ours: `horizon` is fixed, so the trace is a static unrolled chain.
        for _ in range(self.horizon):
            x = prediction
            for k, layer in enumerate(self.decoder_layers):
                x, states[k] = layer.cell(x, states[k], training=False)
            prediction = self.projection(x)
            predictions.append(prediction)
        return tf.concat(predictions, axis=1)

    def enter(self) -> None:
        pass

    def train_step(self, inputs: np.ndarray, targets: np.ndarray) -> float:
        return float(self._train(inputs, targets))

    def forecast(self, inputs: np.ndarray) -> np.ndarray:
        return self._forecast(inputs).numpy()

    def close(self) -> None:
        pass  # Keras state is dropped with the runner; clear_session runs per workload.


class TorchRunner:
    """The PyTorch peer: `nn.LSTM` encoder and decoder, eager, with `threads` intra-op threads."""

    def __init__(self, workload: Workload, settings: Settings, *, threads: int) -> None:
        try:
            import torch
        except ImportError as error:
            raise RuntimeError(
                "the PyTorch peer needs torch: pip install -e '.[bench]' (a CPU build, pinned)"
            ) from error
        self.torch, self.threads = torch, threads
        spec = ModelSpec(horizon=workload.horizon)
        w = workload
        self.enter()
        torch.manual_seed(settings.seed)
        self.encoder = torch.nn.LSTM(w.num_features, w.num_units, w.num_layers)
        self.decoder = torch.nn.LSTM(1, w.num_units, w.num_layers)
        self.projection = torch.nn.Linear(w.num_units, 1)
        self.parameters = [
            *self.encoder.parameters(),
            *self.decoder.parameters(),
            *self.projection.parameters(),
        ]
        self.optimizer = torch.optim.Adam(self.parameters, lr=spec.learning_rate)
        self.clip_norm = spec.clip_norm
        self.horizon = w.horizon

    def enter(self) -> None:
        self.torch.set_num_threads(self.threads)

    def teacher_forced(self, inputs: np.ndarray, targets: np.ndarray):
        """The decoder's outputs [B, H] reading the last observed target, then `targets`."""
        torch = self.torch
        x = torch.from_numpy(inputs).transpose(0, 1)  # time-major, as nn.LSTM expects
        _, state = self.encoder(x)
        y = torch.from_numpy(targets)
        previous_true = torch.cat([x[-1, :, :1].T, y[:, :-1].T], dim=0)[:, :, None]
        outputs, _ = self.decoder(previous_true, state)
        return self.projection(outputs)[:, :, 0].T

    def train_step(self, inputs: np.ndarray, targets: np.ndarray) -> float:
        torch = self.torch
        loss = torch.mean((self.teacher_forced(inputs, targets) - torch.from_numpy(targets)) ** 2)
        self.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.parameters, self.clip_norm)
        self.optimizer.step()
        return loss.item()

    def forecast(self, inputs: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            x = torch.from_numpy(inputs).transpose(0, 1)
            _, state = self.encoder(x)
            prediction = x[-1:, :, :1]  # [1, B, 1]: the last observed target
            predictions = []
            for _ in range(self.horizon):
                output, state = self.decoder(prediction, state)
                prediction = self.projection(output)
                predictions.append(prediction)
            return torch.cat(predictions, dim=0)[:, :, 0].T.numpy()

    def close(self) -> None:
        pass


def peers(workload: Workload, settings: Settings) -> dict[str, Callable[[], Runner]]:
    """The peers' names and how to build each."""
    w, s = workload, settings
    return {
        "keras/step": lambda: KerasRunner(w, s),
        "keras/step+xla": lambda: KerasRunner(w, s, xla=True),
        "keras/unroll": lambda: KerasRunner(w, s, unroll=True),
        "torch/1t": lambda: TorchRunner(w, s, threads=1),
        "torch/2t": lambda: TorchRunner(w, s, threads=2),
    }


def implementations(workload: Workload, settings: Settings) -> dict[str, Callable[[], Runner]]:
    """Every implementation of a workload: each of ours, then the peers."""
    ours: dict[str, Callable[[], Runner]] = {
        f"{OURS_PREFIX}{encoder}": lambda encoder=encoder: OursRunner(workload, encoder, settings)
        for encoder in SEQUENCE_IMPLEMENTATIONS
    }
    return ours | peers(workload, settings)


# -- measuring -----------------------------------------------------------------------------------
def _seconds(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class _Data:
    inputs: np.ndarray
    targets: np.ndarray
    one: np.ndarray
    many: np.ndarray

    @classmethod
    def random(cls, w: Workload, seed: int) -> _Data:
        rng = np.random.default_rng(seed)
        return cls(
            inputs=rng.standard_normal((w.batch, w.lookback, w.num_features), dtype=np.float32),
            targets=rng.standard_normal((w.batch, w.horizon), dtype=np.float32),
            one=rng.standard_normal((1, w.lookback, w.num_features), dtype=np.float32),
            many=rng.standard_normal((w.infer_batch, w.lookback, w.num_features), dtype=np.float32),
        )


def warm_up_libraries(workload: Workload, settings: Settings) -> None:
    """Build and run a tiny model of every implementation once, untimed, so one-time library
    initialisation (kernels, XLA, thread pools) is charged to none of the start-up figures."""
    tiny = quick(workload)
    data = _Data.random(tiny, settings.seed)
    for name, build in implementations(tiny, settings).items():
        _progress(f"[warm-up] {name}")
        runner = build()
        runner.enter()
        runner.train_step(data.inputs, data.targets)
        runner.forecast(data.one)
        runner.close()
    keras.backend.clear_session()


def measure_workload(workload: Workload, settings: Settings) -> list[Measurement]:
    """Build, warm up and time every implementation of one workload, interleaved by round."""
    w = workload
    data = _Data.random(w, settings.seed)
    runners: dict[str, Runner] = {}
    startup: dict[str, float] = {}
    try:
        for name, build in implementations(w, settings).items():
            _progress(f"[{w.name}] building {name}")
            start = time.perf_counter()
            runner = runners[name] = build()
            runner.enter()
            runner.train_step(data.inputs, data.targets)
            startup[name] = time.perf_counter() - start

        for name, runner in runners.items():
            _progress(f"[{w.name}] warming up {name}")
            runner.enter()
            for _ in range(max(settings.warmup, 1)):  # >= 1: the first call traces/allocates
                runner.train_step(data.inputs, data.targets)
                runner.forecast(data.one)
                runner.forecast(data.many)

        train: dict[str, list[float]] = {name: [] for name in runners}
        infer_one: dict[str, list[float]] = {name: [] for name in runners}
        infer_many: dict[str, list[float]] = {name: [] for name in runners}
        for round_ in range(settings.rounds):
            _progress(f"[{w.name}] round {round_ + 1}/{settings.rounds}")
            for name, runner in runners.items():
                runner.enter()
                elapsed = _seconds(
                    lambda runner=runner: [
                        runner.train_step(data.inputs, data.targets) for _ in range(settings.steps)
                    ]
                )
                train[name].append(w.batch * settings.steps / elapsed)
                for _ in range(settings.infer_calls):
                    infer_one[name].append(1e3 * _seconds(lambda r=runner: r.forecast(data.one)))
                for _ in range(settings.infer_calls):
                    infer_many[name].append(1e3 * _seconds(lambda r=runner: r.forecast(data.many)))
    finally:
        for runner in runners.values():
            runner.close()
        # Drop Keras's global graph state so the next workload starts clean.
        keras.backend.clear_session()

    return [
        Measurement(
            w,
            name,
            Timing(tuple(train[name])),
            Timing(tuple(infer_one[name])),
            Timing(tuple(infer_many[name])),
            Timing((startup[name],)),
        )
        for name in runners
    ]


def run_benchmark(workloads: Sequence[Workload], settings: Settings) -> list[Measurement]:
    """Measure every workload. Sets TF's eager thread counts first (see `configure_threads`)."""
    configure_threads(settings.intra_op, settings.inter_op)
    if workloads:
        warm_up_libraries(workloads[0], settings)
    measurements = []
    for workload in workloads:
        measurements.extend(measure_workload(workload, settings))
    return measurements


# -- reporting -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class MachineFacts:
    cpu: str
    vector_extensions: tuple[str, ...]  # the CPU's SIMD flags that matter to these kernels
    cpu_count: int | None  # os.cpu_count(): CPUs in the machine
    usable_cpus: int  # CPUs this process may run on (affinity / container limits)
    load_average: tuple[float, float, float] | None
    python: str
    tensorflow: str
    keras: str
    torch: str
    numpy: str
    eager_threads: tuple[int, int]  # (intra-op, inter-op) as TF reports them for Keras
    # Clocks for "how busy was the machine apart from us" between two snapshots:
    wall_seconds: float  # time.monotonic()
    own_cpu_seconds: float  # this process's user + system CPU time
    machine_cpu_seconds: tuple[float, float] | None  # all CPUs' (busy, steal), Linux only

    @classmethod
    def collect(cls) -> MachineFacts:
        return cls(
            cpu=cpu_model(),
            vector_extensions=vector_extensions(),
            cpu_count=os.cpu_count(),
            usable_cpus=len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count() or 0,
            load_average=os.getloadavg() if hasattr(os, "getloadavg") else None,
            python=platform.python_version(),
            tensorflow=tf.__version__,
            keras=keras.__version__,
            torch=_torch_version(),
            numpy=np.__version__,
            eager_threads=(
                tf.config.threading.get_intra_op_parallelism_threads(),
                tf.config.threading.get_inter_op_parallelism_threads(),
            ),
            wall_seconds=time.monotonic(),
            own_cpu_seconds=sum(os.times()[:2]),
            machine_cpu_seconds=_machine_cpu_seconds(),
        )


def _torch_version() -> str:
    try:
        import torch
    except ImportError:
        return "not installed"
    return torch.__version__


def _machine_cpu_seconds() -> tuple[float, float] | None:
    """CPU seconds since boot over all CPUs: (busy, stolen by the hypervisor), from /proc/stat."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(field) for field in stat.readline().split()[1:9]]
        user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    except (OSError, ValueError):
        return None
    per_second = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / per_second, steal / per_second


def _other_load(before: MachineFacts, after: MachineFacts) -> str:
    """What else used the CPUs while we measured: the noise figure on a shared machine."""
    if before.machine_cpu_seconds is None or after.machine_cpu_seconds is None:
        return "n/a (no /proc/stat)"
    wall = after.wall_seconds - before.wall_seconds
    if wall <= 0:
        return "n/a (no time passed)"
    busy = after.machine_cpu_seconds[0] - before.machine_cpu_seconds[0]
    steal = after.machine_cpu_seconds[1] - before.machine_cpu_seconds[1]
    own = after.own_cpu_seconds - before.own_cpu_seconds
    return (
        f"this process used {own / wall:.2f} CPUs on average, other processes "
        f"{max(busy - own, 0.0) / wall:.2f}, hypervisor steal {steal / wall:.2f} "
        f"(over {wall:.0f} s)"
    )


def _load(load: tuple[float, float, float] | None) -> str:
    return "n/a" if load is None else " ".join(f"{x:.2f}" for x in load)


def _cell(timing: Timing, digits: int) -> str:
    return f"{timing.median:.{digits}f} ±{100 * timing.spread:.0f}%"


def format_report(
    measurements: Sequence[Measurement],
    settings: Settings,
    before: MachineFacts,
    after: MachineFacts,
) -> str:
    """The printed tables: machine facts, method, then per workload a table of every
    implementation and the ratios of each of ours to the fastest peer."""
    lines = [
        "forecaster benchmark: ours (TF1 graph + Session) vs Keras 3 and PyTorch peers",
        f"machine: {before.cpu}, {before.cpu_count} CPUs ({before.usable_cpus} usable); "
        f"vector extensions: {' '.join(before.vector_extensions) or 'none found'}",
        f"load average (1/5/15 min) {_load(before.load_average)} before, "
        f"{_load(after.load_average)} after; during the run: {_other_load(before, after)}",
        f"versions: Python {before.python}, TensorFlow {before.tensorflow}, "
        f"Keras {before.keras}, PyTorch {before.torch}, numpy {before.numpy}",
        f"threads: ours Session intra-op {settings.intra_op}, inter-op {settings.inter_op}; "
        f"keras eager context intra-op {after.eager_threads[0]}, "
        f"inter-op {after.eager_threads[1]} (read back from TF); torch/Nt: N intra-op threads",
        f"method: {settings.warmup} warm-up steps/calls untimed; {settings.rounds} interleaved "
        f"rounds x ({settings.steps} train steps + {settings.infer_calls} forecast calls per "
        "batch size); medians, ± = half the interquartile range; start-up = build + first "
        "train step, one sample each",
        "ratios: ours vs the fastest peer of this run, per figure, as 'times as fast' "
        "(> 1 = ours faster)",
    ]
    by_workload: dict[str, list[Measurement]] = {}
    for m in measurements:
        by_workload.setdefault(m.workload.name, []).append(m)
    for rows in by_workload.values():
        workload = rows[0].workload
        batch = workload.infer_batch
        header = (
            f"{'implementation':<18} {'train win/s':>14} {'infer ms (1)':>14} "
            f"{f'infer ms ({batch})':>16} {'start-up s':>11}"
        )
        lines += ["", workload.describe(), header, "-" * len(header)]
        for m in rows:
            lines.append(
                f"{m.implementation:<18} {_cell(m.train_windows_per_s, 0):>14} "
                f"{_cell(m.infer_ms_one, 2):>14} {_cell(m.infer_ms_batch, 2):>16} "
                f"{m.startup_s.median:>11.2f}"
            )
        peers_ = [m for m in rows if not m.is_ours]
        if not peers_:
            continue
        for m in rows:
            if m.is_ours:
                cells = "  ".join(
                    f"{c.figure} {c.ratio:.2f}x ({c.peer})" for c in against_fastest_peer(m, peers_)
                )
                lines.append(f"{m.implementation} vs fastest peer: {cells}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    defaults = Settings()
    parser = argparse.ArgumentParser(
        prog="benchmarks/bench.py",
        description="Time our seq2seq LSTM against Keras 3 and PyTorch peers of the same shape.",
    )
    parser.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    parser.add_argument(
        "--repeats",
        type=int,
        default=defaults.rounds,
        help="interleaved timed rounds (throughput samples per implementation)",
    )
    parser.add_argument(
        "--steps", type=int, default=defaults.steps, help="timed train steps per round"
    )
    parser.add_argument(
        "--infer-calls",
        type=int,
        default=defaults.infer_calls,
        help="timed forecast calls per batch size per round",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=defaults.warmup,
        help="untimed train steps and forecast calls before timing",
    )
    parser.add_argument("--intra-op", type=int, default=defaults.intra_op)
    parser.add_argument("--inter-op", type=int, default=defaults.inter_op)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny models, 2 rounds x 2 steps (overrides --repeats, --steps, --infer-calls, "
        "--warmup): a smoke test, not a measurement",
    )
    args = parser.parse_args(argv)

    workloads = [WORKLOADS[name] for name in args.workloads]
    settings = Settings(
        rounds=args.repeats,
        steps=args.steps,
        infer_calls=args.infer_calls,
        warmup=args.warmup,
        intra_op=args.intra_op,
        inter_op=args.inter_op,
        seed=args.seed,
    )
    if args.quick:
        workloads = [quick(w) for w in workloads]
        settings = replace(settings, rounds=2, steps=2, infer_calls=2, warmup=1)

    before = MachineFacts.collect()
    measurements = run_benchmark(workloads, settings)
    after = MachineFacts.collect()
    print(format_report(measurements, settings, before, after))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
