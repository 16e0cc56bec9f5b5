"""What the MLflow UI shows of our experiments: their kind, and a runs table with our metrics.

MLflow 3.17 records an experiment's kind in the experiment tag `mlflow.experimentKind` (the
UI's own kind selector writes it); we tag ours `custom_model_development` ("Machine learning").
The 3.17 UI, though, picks the page an experiment opens on from its global "GenAI / Model
training" switch (`?workflowType=` in the URL, else the browser's last choice, GenAI on a fresh
browser), not from the tag: so the links we print carry `workflowType=machine_learning`, and
open on the runs table.

The runs table's columns live in the browser. A shared view (what the table's Share button
makes: an experiment tag `mlflow.sharedViewState.<key>` holding the view as JSON, opened with
`viewStateShareKey=<key>`) is the one way to put chosen columns in a link; MLflow documents no
server-side default columns.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from urllib.parse import urlencode

from mlflow.tracking import MlflowClient

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"  # the UI's "Machine learning" kind
SHARED_VIEW_TAG = "mlflow.sharedViewState."
MACHINE_LEARNING_WORKFLOW = "machine_learning"
LOCAL_UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves by default

# The runs table's first columns in the link a training run prints: the model's test MAE beside the
# random walk's and the best baseline's, the skills, interval coverage when the model has
# quantiles, and the validation loss models are selected on.
RUNS_TABLE = [
    "test_mae",
    "naive_test_mae",
    "best_baseline_test_mae",
    "test_skill_vs_best_baseline",
    "test_rmse_skill",
    "test_coverage_80",
    "test_coverage_90",
    "best_val_loss",
]


def ui_base_url(tracking_uri: str) -> str:
    """The UI of a tracking URI: the server itself for http(s), else a local `mlflow ui`."""
    if tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/")
    return LOCAL_UI


def runs_view_url(
    tracking_uri: str,
    experiment_id: str,
    *,
    metrics: Sequence[str],
    params: Sequence[str] = (),
    order_by: str | None = None,
    ascending: bool = True,
    run_name_width: int = 220,
    column_width: int = 120,
) -> str:
    """A link to the experiment's runs table showing each run's dataset, then `metrics` and
    `params`, right after the run name, sorted by metric `order_by` (default: newest first).
    Sorted by a metric, the table lists child runs one per row instead of folded under their
    parent."""
    run_name = "attributes.`Run Name`"
    columns = [
        "attributes.`Dataset`",
        *(f"metrics.`{m}`" for m in metrics),
        *(f"params.`{p}`" for p in params),
    ]
    view = {
        "selectedColumns": columns,
        # In this order (the table lays out only the columns that fit on screen).
        "columnOrder": [run_name, *columns],
        "columnWidths": {run_name: run_name_width} | dict.fromkeys(columns, column_width),
    }
    if order_by is not None:
        view |= {"orderByKey": f"metrics.`{order_by}`", "orderByAsc": ascending}
    text = json.dumps(view, sort_keys=True)
    key = hashlib.sha256(text.encode()).hexdigest()[:16]
    client = MlflowClient(tracking_uri)
    tags = client.get_experiment(experiment_id).tags
    if tags.get(SHARED_VIEW_TAG + key) != text:
        client.set_experiment_tag(experiment_id, SHARED_VIEW_TAG + key, text)
    query = urlencode({"viewStateShareKey": key, "workflowType": MACHINE_LEARNING_WORKFLOW})
    return f"{ui_base_url(tracking_uri)}/#/experiments/{experiment_id}/runs?{query}"


def run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    query = urlencode({"workflowType": MACHINE_LEARNING_WORKFLOW})
    return f"{ui_base_url(tracking_uri)}/#/experiments/{experiment_id}/runs/{run_id}?{query}"


def how_to_open(tracking_uri: str) -> str:
    """What to run before a link to a local store's UI works."""
    if tracking_uri.startswith(("http://", "https://")):
        return ""
    return f"mlflow ui --backend-store-uri {tracking_uri}"
