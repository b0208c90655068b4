"""Quick sanity: the slim model's `forward` exports to ONNX and runs the same in ONNX Runtime.

The exporter proper (leanvision.export) is tested on its own; this only guards the
contract that `forward` is pure tensor ops with a dynamic batch axis and that exported
nodes can be traced back to the model's parts.
"""

import ast

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from leanvision.models import create_model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("retinanet_mbv2_slim", num_classes=2).eval()
    path = tmp_path_factory.mktemp("onnx") / "slim.onnx"
    # torch 2.14's default (torch.export-based) exporter; the legacy TorchScript one is deprecated.
    torch.onnx.export(
        model, (torch.randn(1, 3, 128, 160),), path, input_names=["images"],
        output_names=["cls_logits", "bbox_regression"], dynamo=True,
        dynamic_shapes=({0: torch.export.Dim("batch")},),
    )
    return model, path


@pytest.mark.slow  # the torch.export-based exporter takes ~20 s on 2 cores
def test_onnx_runtime_matches_torch(exported):
    model, path = exported
    images = torch.randn(3, 3, 128, 160)  # another batch size than at export
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    cls_logits, bbox_regression = session.run(["cls_logits", "bbox_regression"], {"images": images.numpy()})
    with torch.no_grad():
        expected = model(images)
    np.testing.assert_allclose(cls_logits, expected[0].numpy(), rtol=0, atol=1e-4)
    np.testing.assert_allclose(bbox_regression, expected[1].numpy(), rtol=0, atol=1e-4)


@pytest.mark.slow
def test_exported_convolutions_carry_their_part(exported):
    """Node names are generic (`node_Conv_12`); the module path survives in `name_scopes`."""
    model, path = exported
    graph = onnx.load(str(path), load_external_data=False).graph
    parts = set()
    for node in (n for n in graph.node if n.op_type == "Conv"):
        scopes = {p.key: p.value for p in node.metadata_props}["pkg.torch.onnx.name_scopes"]
        parts.add(ast.literal_eval(scopes)[1])  # a Python list literal: ['', 'backbone', 'backbone.body', ...]
    assert parts == set(model.parts.values())
