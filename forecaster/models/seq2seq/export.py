"""A trained seq2seq model as a self-contained directory that forecasts prices from prices.

`export_model` writes

    <dir>/saved_model/         TF1 SavedModel of the inference graph only (no optimiser state,
                               no dropout); signature inputs: encoder_inputs, encoder_lengths,
                               initial_{c,h}_{k}; outputs: forecast, encoder_{c,h}_{k},
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

from forecaster.data.windows import Scaler
from forecaster.models.seq2seq.graph import build_inference_graph
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
    # model.output, and the levels of the quantiles a distributional output forecasts; the
    # defaults are those of a point model (what exports from before these keys meant).
    output: str = "point"
    quantile_levels: list[float] | None = None

    @property
    def scaler(self) -> Scaler:
        return Scaler(self.scaler_mean, self.scaler_std)

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
