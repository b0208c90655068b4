"""Engines: outputs equal torch's, async returns every result to its callback, FP32 is FP32,
bad model files are one-line ModelErrors."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
import torch

from leanvision.core import ConfigError, ModelError, Precision
from leanvision.runtime import EngineOptions, PerformanceHint, PrecisionHint, open_engine
from leanvision.runtime.engines import base
from tests.runtime.tiny_retinanet import Body

BACKENDS = [("tiny_model_dir", "model.onnx", "onnxruntime"), ("tiny_model_dir", "model.onnx", "openvino"),
            ("tiny_ir_dir", "model.xml", "openvino")]


@pytest.fixture(params=BACKENDS, ids=lambda p: f"{p[1]}-{p[2]}")
def engine(request):
    fixture, name, backend = request.param
    path = request.getfixturevalue(fixture) / name
    with open_engine(path, backend=backend, options=EngineOptions(num_requests=3)) as eng:
        yield eng


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(5, 3, 224, 200)).astype(np.float32)


@pytest.fixture(scope="module")
def torch_outputs(tiny_retinanet, batch) -> dict[str, np.ndarray]:
    with torch.no_grad():
        logits, deltas = Body(tiny_retinanet).eval()(torch.from_numpy(batch))
    return {"cls_logits": logits.numpy(), "bbox_regression": deltas.numpy()}


def test_describes_its_model(engine):
    assert engine.input_name == "images"
    assert engine.input_shape == (None, 3, 224, 200)
    assert engine.output_names == ("cls_logits", "bbox_regression")
    assert engine.num_requests == 3
    assert engine.precision is Precision.FP32


def test_fp32_infer_equals_torch(engine, batch, torch_outputs):
    # Tight: an engine silently running bf16 (OpenVINO's CPU default on AMX) moves logits ~1e-2.
    outputs = engine.infer(batch)
    for name, expected in torch_outputs.items():
        np.testing.assert_allclose(outputs[name], expected, rtol=1e-4, atol=1e-4)


def test_async_returns_every_result_to_its_callback(engine, batch, torch_outputs):
    results: dict[int, dict[str, np.ndarray]] = {}
    lock = threading.Lock()

    def collect(i):
        def on_done(outputs):
            with lock:
                results[i] = outputs
        return on_done

    order = [i % len(batch) for i in range(24)]
    for request, item in enumerate(order):
        engine.submit(batch[item : item + 1], collect(request))
    engine.wait_all()
    assert sorted(results) == list(range(24))
    for request, item in enumerate(order):
        np.testing.assert_allclose(results[request]["cls_logits"][0], torch_outputs["cls_logits"][item], atol=1e-4)


def test_a_failing_callback_is_raised_by_wait_all_and_the_engine_goes_on(engine, batch):
    def fail(outputs):
        raise KeyError("callback failed")

    engine.submit(batch[:1], fail)
    with pytest.raises(KeyError, match="callback failed"):
        engine.wait_all()
    done = []
    engine.submit(batch[:1], done.append)
    engine.wait_all()
    assert len(done) == 1


def test_a_batch_of_the_wrong_shape_is_refused(engine):
    with pytest.raises(ValueError, match=r"takes input of shape \['\?', 3, 224, 200\], got \[1, 3, 200, 224\]"):
        engine.infer(np.zeros((1, 3, 200, 224), np.float32))


def test_submit_blocks_while_every_request_is_busy(tiny_model_dir, batch):
    release = threading.Event()
    with open_engine(tiny_model_dir / "model.onnx", options=EngineOptions(num_requests=2)) as eng:
        for _ in range(2):
            eng.submit(batch[:1], lambda outputs: release.wait())
        third = threading.Thread(target=eng.submit, args=(batch[:1], lambda outputs: None))
        third.start()
        third.join(timeout=0.5)
        blocked = third.is_alive()
        release.set()
        third.join()
        eng.wait_all()
    assert blocked


def test_openvino_fp32_sets_the_f32_hint_explicitly(tiny_ir_dir):
    import openvino as ov

    with open_engine(tiny_ir_dir / "model.xml") as eng:
        hint = eng._compiled.get_property(ov.properties.hint.inference_precision)
    assert "f32" in str(hint) or "float32" in str(hint)


def test_bf16_runs_where_the_cpu_has_it_and_warns_once_otherwise(tiny_ir_dir, monkeypatch):
    import openvino as ov

    from leanvision.runtime.engines.openvino import cpu_supports_bf16

    monkeypatch.setattr(base, "_warned", set())
    options = EngineOptions(precision=PrecisionHint.BF16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = open_engine(tiny_ir_dir / "model.xml", options=options)
        second = open_engine(tiny_ir_dir / "model.xml", options=options)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    if cpu_supports_bf16(ov.Core()):
        assert first.precision is second.precision is Precision.BF16 and not messages
    else:
        assert first.precision is second.precision is Precision.FP32
        assert len(messages) == 1 and "no bf16 support" in messages[0]


def test_auto_precision_reports_what_openvino_chose(tiny_ir_dir):
    import openvino as ov

    from leanvision.runtime.engines.openvino import cpu_supports_bf16

    eng = open_engine(tiny_ir_dir / "model.xml", options=EngineOptions(precision=PrecisionHint.AUTO))
    assert eng.precision is (Precision.BF16 if cpu_supports_bf16(ov.Core()) else Precision.FP32)


def test_onnxruntime_bf16_request_runs_fp32_with_a_warning(tiny_model_dir, monkeypatch):
    monkeypatch.setattr(base, "_warned", set())
    with pytest.warns(RuntimeWarning, match="computes in fp32"):
        eng = open_engine(tiny_model_dir / "model.onnx", options=EngineOptions(precision=PrecisionHint.BF16))
    assert eng.precision is Precision.FP32


def test_options_reach_openvino(tiny_ir_dir):
    import openvino as ov

    options = EngineOptions(threads=2, streams=2, performance=PerformanceHint.THROUGHPUT)
    with open_engine(tiny_ir_dir / "model.xml", options=options) as eng:
        compiled = eng._compiled
        assert compiled.get_property(ov.properties.inference_num_threads) == 2
        assert int(compiled.get_property(ov.properties.num_streams)) == 2
        assert eng.num_requests == compiled.get_property(ov.properties.optimal_number_of_infer_requests)


def test_invalid_options_are_refused(tiny_model_dir):
    with pytest.raises(ValueError, match="threads must be at least 1"):
        EngineOptions(threads=0)
    with pytest.raises(ConfigError, match="one stream"):
        open_engine(tiny_model_dir / "model.onnx", options=EngineOptions(streams=2))
    with pytest.raises(ConfigError, match="unknown backend 'tensorrt'"):
        open_engine(tiny_model_dir / "model.onnx", backend="tensorrt")


def test_int8_qdq_model_runs_on_both_engines(tiny_int8_qdq_dir, batch, torch_outputs):
    for backend in ("onnxruntime", "openvino"):
        with open_engine(tiny_int8_qdq_dir / "model.onnx", backend=backend) as eng:
            logits = eng.infer(batch)["cls_logits"]
        # Quantized, so not equal: but the same function (INT8 error is a small part of the spread).
        error = np.abs(logits - torch_outputs["cls_logits"]).mean()
        assert error < 0.1 * torch_outputs["cls_logits"].std(), (backend, error)


def write(path, data: bytes):
    path.write_bytes(data)
    return path


BAD_FILES = {
    "missing": (lambda d: d / "model.onnx", None, "model file not found"),
    "empty": (lambda d: write(d / "model.onnx", b""), None, "model file is empty"),
    "garbage-onnx-ort": (lambda d: write(d / "model.onnx", b"not a model"), None, "cannot load model"),
    "garbage-onnx-ov": (lambda d: write(d / "model.onnx", b"not a model"), "openvino", "cannot load model"),
    "garbage-xml": (lambda d: write(d / "model.bin", b"x") and write(d / "model.xml", b"<net"), None, "cannot load model"),
    "xml-without-bin": (lambda d: write(d / "model.xml", b"<net/>"), None, "weights file model.bin is missing"),
    "unknown-suffix": (lambda d: write(d / "model.pt", b"x"), None, "unknown model file type"),
    "ir-on-onnxruntime": (lambda d: write(d / "model.xml", b"<net/>"), "onnxruntime", "cannot run an OpenVINO IR"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_model_files_are_one_line_model_errors(case, tmp_path):
    make, backend, message = BAD_FILES[case]
    path = make(tmp_path)
    with pytest.raises(ModelError, match=message) as info:
        open_engine(path, backend=backend)
    assert info.value.path == str(path)
    assert "\n" not in str(info.value)


def test_truncated_onnx_is_a_model_error(tiny_model_dir, tmp_path):
    data = (tiny_model_dir / "model.onnx").read_bytes()
    path = write(tmp_path / "model.onnx", data[: len(data) // 2])
    for backend in ("onnxruntime", "openvino"):
        with pytest.raises(ModelError, match="cannot load model"):
            open_engine(path, backend=backend)
