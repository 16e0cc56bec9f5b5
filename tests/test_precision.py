"""`train.precision`: bf16 only where the CPU computes in bf16 natively; refused elsewhere."""

from pathlib import Path

import numpy as np
import pytest
from tensorflow.core.protobuf import rewriter_config_pb2

from forecaster.errors import ConfigError
from forecaster.models.seq2seq.network import Seq2SeqModel, session_config
from forecaster.models.seq2seq.spec import ModelSpec
from forecaster.training import TrainConfig, precision

ZEN3_FLAGS = "fpu sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma"
SAPPHIRE_RAPIDS_FLAGS = f"{ZEN3_FLAGS} avx512f avx512bw avx512vl avx512_bf16 amx_tile amx_bf16"


def fake_cpuinfo(tmp_path: Path, flags: str, model: str = "Some CPU") -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: {model}\nflags\t\t: {flags}\n")
    return path


def test_bf16_is_refused_on_a_cpu_without_avx512_bf16_or_amx(tmp_path):
    cpuinfo = fake_cpuinfo(tmp_path, ZEN3_FLAGS, model="AMD EPYC 7B13")
    with pytest.raises(ConfigError) as error:
        precision.check_precision("bf16", cpuinfo)
    message = str(error.value)
    assert message.startswith("train.precision=bf16 needs a CPU with AVX512-BF16 or AMX")
    assert "AMD EPYC 7B13" in message and "sse4_2 avx avx2 fma" in message
    assert message.endswith("Use train.precision=float32.")


@pytest.mark.parametrize("flag", ["avx512_bf16", "amx_bf16"])
def test_bf16_is_accepted_with_either_native_bf16_extension(tmp_path, flag):
    precision.check_precision("bf16", fake_cpuinfo(tmp_path, f"{ZEN3_FLAGS} {flag}"))


def test_float32_is_accepted_anywhere(tmp_path):
    precision.check_precision("float32", fake_cpuinfo(tmp_path, ""))
    precision.check_precision("float32", tmp_path / "no_such_file")


def test_an_unknown_precision_names_the_key_and_the_choices():
    with pytest.raises(ConfigError, match=r"train\.precision='fp16' is invalid.*'float32', 'bf16'"):
        TrainConfig(precision="fp16")


def test_this_machine_gets_bf16_exactly_when_its_cpu_has_it():
    if set(precision.cpu_flags()) & set(precision.BF16_FLAGS):
        assert TrainConfig(precision="bf16").precision == "bf16"
    else:
        with pytest.raises(ConfigError, match="needs a CPU with AVX512-BF16 or AMX"):
            TrainConfig(precision="bf16")


def test_vector_extensions_are_read_in_a_fixed_order(tmp_path):
    cpuinfo = fake_cpuinfo(tmp_path, SAPPHIRE_RAPIDS_FLAGS)
    assert precision.vector_extensions(cpuinfo) == (
        "sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16",
        "amx_tile", "amx_bf16",
    )  # fmt: skip


def test_bf16_turns_on_onednn_mixed_precision_and_the_model_trains(tmp_path, monkeypatch):
    """On a CPU with native bf16 (faked here), the Session rewrites eligible ops to bf16; the
    default float32 Session does not. Either way the model trains to nearly the same loss."""
    monkeypatch.setattr(precision, "CPUINFO", fake_cpuinfo(tmp_path, SAPPHIRE_RAPIDS_FLAGS))
    on = rewriter_config_pb2.RewriterConfig.ON
    rewrite = "auto_mixed_precision_onednn_bfloat16"
    assert getattr(session_config(1, 1, "bf16").graph_options.rewrite_options, rewrite) == on
    assert getattr(session_config(1, 1, "float32").graph_options.rewrite_options, rewrite) != on

    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(16, 10, 1)).astype(np.float32)
    targets = rng.normal(size=(16, 3)).astype(np.float32)
    losses = {}
    for name in ("float32", "bf16"):
        with Seq2SeqModel(
            ModelSpec(horizon=3, num_units=8), intra_op_threads=1, precision=name
        ) as m:
            losses[name] = [m.train_step(inputs, targets) for _ in range(20)]
    assert losses["bf16"][-1] < losses["bf16"][0]
    np.testing.assert_allclose(losses["bf16"], losses["float32"], rtol=0.05)
