"""Tracking helpers that need no MLflow server."""

import pytest

from forecaster.tracking.run import default_artifact_location, flatten


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("sqlite:////srv/store/mlflow.db", "file:///srv/store/mlartifacts"),
        ("sqlite:////srv/store/mlflow.db?timeout=30", "file:///srv/store/mlartifacts"),
        ("http://127.0.0.1:5000", None),
        ("sqlite:///:memory:", None),
    ],
)
def test_artifacts_go_beside_the_sqlite_file(uri, expected):
    assert default_artifact_location(uri) == expected


def test_a_relative_sqlite_path_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert default_artifact_location("sqlite:///mlflow.db") == (tmp_path / "mlartifacts").as_uri()


def test_flatten_joins_nested_keys_with_dots():
    assert flatten({"model": {"num_units": 8, "x": {"y": None}}, "seed": 1}) == {
        "model.num_units": 8,
        "model.x.y": None,
        "seed": 1,
    }
