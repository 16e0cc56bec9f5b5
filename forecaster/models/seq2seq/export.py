"""A trained seq2seq model as a self-contained directory that forecasts prices from prices.

`export_model` writes

    <dir>/saved_model/         TF1 SavedModel of the inference graph only (no optimiser state,
                               no dropout); signature inputs: encoder_inputs, encoder_lengths,
                               initial_{c,h}_{k}, and ticker_ids for a global model with a
                               ticker embedding; outputs: forecast, encoder_{c,h}_{k},
                               decoder_{c,h}_{k}, and for a distributional model.output
                               distribution (`outputs`)
    <dir>/preprocessing.json   how prices become model inputs and forecasts become prices

`forecaster.serving.ExportedForecaster` loads it without any graph-building code, so an exported
model keeps working when the code that trained it changes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from forecaster.data.windows import Scaler, target_series
from forecaster.models.seq2seq.graph import build_inference_graph
from forecaster.models.seq2seq.inputs import UNKNOWN_TICKER
from forecaster.models.seq2seq.spec import ModelSpec

SAVED_MODEL_DIR = "saved_model"
PREPROCESSING_FILE = "preprocessing.json"
SERVING_TAG = "serve"
SIGNATURE_KEY = "serving_default"


@dataclass(frozen=True)
class Preprocessing:
    target: str
    scaler_mean: float
    scaler_std: float
    lookback: int
    horizon: int
    num_layers: int
    num_units: int
    price_column: str
    date_column: str
    calendar: str | None = None  # exchange calendar of forecast dates; None: the data's spacing
    # model.output, and the levels of the quantiles a distributional output forecasts; the
    # defaults are those of a point model (what exports from before these keys meant).
    output: str = "point"
    quantile_levels: list[float] | None = None
    # model.calibration=scale: per step, the factor on the quantiles' distances from the median
    # (outputs.scale_intervals); None: the network's quantiles as they are.
    interval_scale: list[float] | None = None
    # A global model (trained on a panel): its tickers, in embedding order, and each one's
    # scaler [mean, std]; scaler_mean and scaler_std are then NaN (a ticker it was not trained
    # on is scaled on its own prices).
    tickers: list[str] | None = None
    ticker_scalers: list[list[float]] | None = None
    ticker_embedding: int = 0
    demean: bool = True  # model.demean: a new ticker's scaler keeps its mean at 0 when false
    # model.shrinkage: forecast = origin + factor * (model's forecast - origin), per ticker and
    # for a ticker the model was not trained on.
    shrinkage: float = 1.0
    ticker_shrinkage: list[float] | None = None

    def shrinkage_for(self, ticker: str | None) -> float:
        index = self.ticker_index(ticker)
        if index is None or index == UNKNOWN_TICKER or self.ticker_shrinkage is None:
            return self.shrinkage
        return self.ticker_shrinkage[index]

    @property
    def scaler(self) -> Scaler:
        if self.tickers is not None:
            raise ValueError("a global model has one scaler per ticker: use scaler_for(ticker)")
        return Scaler(self.scaler_mean, self.scaler_std)

    def ticker_index(self, ticker: str | None) -> int | None:
        """A global model's index of `ticker`; -1 for a ticker it was not trained on; None for a
        single-series model."""
        if self.tickers is None:
            return None
        return self.tickers.index(ticker) if ticker in self.tickers else UNKNOWN_TICKER

    def scaler_for(self, ticker: str | None, prices) -> Scaler:
        """The scaler of `ticker`'s series `prices`: its trained one, or for a ticker the model
        was not trained on, fitted on `prices` themselves (all before the forecast origin)."""
        index = self.ticker_index(ticker)
        if index is None:
            return self.scaler
        if index == UNKNOWN_TICKER:
            scaler = Scaler.fit(target_series(prices, self.target).to_numpy())
            return scaler if self.demean else Scaler(0.0, scaler.std)
        return Scaler(*self.ticker_scalers[index])

    @classmethod
    def load(cls, directory: str | Path) -> Preprocessing:
        return cls(**json.loads((Path(directory) / PREPROCESSING_FILE).read_text()))


def export_model(
    spec: ModelSpec,
    weights: dict[str, np.ndarray],
    preprocessing: Preprocessing,
    path: str | Path,
) -> Path:
    """Build the inference graph of `spec` in a fresh graph, load `weights` (by variable name,
    as `Seq2SeqModel.get_weights` returns them) and write the directory described above."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    graph = tf.Graph()
    with graph.as_default():
        t = build_inference_graph(spec)
        variables = tf.compat.v1.global_variables()
        values = {
            v.op.name: tf.compat.v1.placeholder(v.dtype.base_dtype, v.shape) for v in variables
        }
        assign = tf.group(*[v.assign(values[v.op.name]) for v in variables])
        inputs = {"encoder_inputs": t.encoder_inputs, "encoder_lengths": t.encoder_lengths}
        if t.ticker_ids is not None:
            inputs["ticker_ids"] = t.ticker_ids
        outputs = {"forecast": t.forecast}
        if t.distribution is not None:
            outputs["distribution"] = t.distribution
        for k in range(spec.num_layers):
            for part in ("c", "h"):
                inputs[f"initial_{part}_{k}"] = getattr(t.encoder_initial_state[k], part)
                outputs[f"encoder_{part}_{k}"] = getattr(t.encoder_final_state[k], part)
                outputs[f"decoder_{part}_{k}"] = getattr(t.decoder_final_state[k], part)
        signature = tf.compat.v1.saved_model.signature_def_utils.predict_signature_def(
            inputs=inputs, outputs=outputs
        )
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(assign, {values[name]: weights[name] for name in values})
            builder = tf.compat.v1.saved_model.Builder(str(path / SAVED_MODEL_DIR))
            builder.add_meta_graph_and_variables(
                session, [SERVING_TAG], signature_def_map={SIGNATURE_KEY: signature}
            )
            builder.save()
    (path / PREPROCESSING_FILE).write_text(json.dumps(asdict(preprocessing), indent=2))
    return path
