"""OpenVINO backend: NNCF post-training quantization and surgery on its FakeQuantize nodes.

NNCF marks what runs in INT8 with FakeQuantize (FQ) nodes on the inputs of an operation: one
on the activation (shared by all consumers of that tensor) and one on the weights. Leaving
a layer in floating point after the fact is therefore a rewiring: connect the layer's input
to the FQ's own input, on the activation and on the weight path (`restore_fp32`); other
consumers of a shared activation FQ keep it. NNCF is asked to keep weight FQs as such
(`compress_weights=False`) so the FP32 weights stay in the graph for this; `save` then
compresses them to int8 constants as `nncf.quantize` would have (OpenVINO's
`compress_quantize_weights_transformation`, the pass NNCF itself runs).

`switchable` builds all "one layer kept FP32" variants in one graph: each layer's quantized
inputs pass through `Select(keep[i], fp32 input, quantized input)` driven by a boolean model
input, so ranking 110 layers costs one compilation (~1.3 s here for the slim RetinaNet)
instead of 110. The Select hides the FQ -> conv pattern from the CPU plugin's low-precision
transformations, so this graph emulates INT8 in float (quantize-dequantize); that differs
from the integer kernels only by accumulation rounding.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from leanvision.compression.quantize.groups import Node, group_of
from leanvision.compression.quantize.logs import quiet
from leanvision.compression.quantize.options import AdvancedOptions
from leanvision.core.deps import require
from leanvision.core.errors import ModelError
from leanvision.runtime import Backend, PrecisionHint

logger = logging.getLogger(__name__)

LAYER_OPS = frozenset({"Convolution", "GroupConvolution", "ConvolutionBackpropData",
                       "GroupConvolutionBackpropData", "MatMul"})
SKIPPED_OPS = frozenset({"Constant", "Parameter", "Result"})
BIAS_SUFFIX = "/WithoutBiases"  # OpenVINO's name for a convolution whose bias became an Add
SWITCH_INPUT = "lv_keep_fp32"
FEATURE_OUTPUT = "lv_features"


def _ov() -> Any:
    return require("openvino", extra="deploy", purpose="OpenVINO quantization")


def _ops() -> Any:
    _ov()
    import openvino.opset13 as ops

    return ops


def _by_name(model: Any) -> dict[str, Any]:
    return {op.get_friendly_name(): op for op in model.get_ordered_ops()}


def _fq_inputs(op: Any) -> list[tuple[int, Any]]:
    """(port, FakeQuantize node) for every input of `op` fed by a FakeQuantize."""
    found = []
    for port in range(op.get_input_size()):
        source = op.input_value(port).get_node()
        if source.get_type_name() == "FakeQuantize":
            found.append((port, source))
    return found


class OpenVinoQuantizer:
    """NNCF + OpenVINO: quantizes an IR (or an ONNX file read by OpenVINO) to an INT8 IR."""

    backend = Backend.OPENVINO
    model_files = ("model.xml", "model.onnx")
    output_files = ("model.xml", "model.bin")

    def read(self, model_dir: Path) -> Any:
        """The FP32 model of `model_dir` (model.xml, else model.onnx)."""
        ov = _ov()
        for name in self.model_files:
            path = model_dir / name
            if path.is_file():
                try:
                    return ov.Core().read_model(str(path))
                except Exception as exc:  # OpenVINO's read errors share no public base class
                    lines = [line for line in str(exc).splitlines() if line.strip()]
                    raise ModelError(f"cannot read the model: {(lines or [type(exc).__name__])[-1][:200]}",
                                     path=path) from None
        raise ModelError(f"no model file (expected {' or '.join(self.model_files)})", path=model_dir)

    def nodes(self, model: Any, groups: Mapping[str, str]) -> list[Node]:
        """Every operation but constants, inputs and outputs, in topological order."""
        nodes = []
        for op in model.get_ordered_ops():
            kind = op.get_type_name()
            if kind in SKIPPED_OPS:
                continue
            node = op.get_friendly_name()
            name = node.removesuffix(BIAS_SUFFIX)
            nodes.append(Node(name, node, kind, group_of(name, groups), kind in LAYER_OPS))
        return nodes

    def is_quantized(self, model: Any) -> bool:
        return any(op.get_type_name() == "FakeQuantize" for op in model.get_ops()) or any(
            op.get_type_name() == "Constant" and op.get_output_element_type(0).get_type_name() in ("i8", "u8")
            and any(t.get_node().get_type_name() == "Convert" for t in op.output(0).get_target_inputs())
            for op in model.get_ops()
        )

    def quantized_nodes(self, model: Any) -> set[str]:
        """Names (graph names) of the operations with at least one FakeQuantize input."""
        return {op.get_friendly_name() for op in model.get_ordered_ops() if _fq_inputs(op)}

    def quantize(self, model: Any, calibration: Iterable[np.ndarray], *, images: int, ignored: Sequence[Node],
                 options: AdvancedOptions, reduce_range: bool) -> Any:
        """`nncf.quantize` with one image per dataset item (so subset_size = `images`).

        `reduce_range` is ONNX Runtime's; NNCF applies its own overflow fix for CPUs
        without VNNI (`OverflowFix.FIRST_LAYER`, the default).
        """
        nncf = require("nncf", extra="train", purpose="OpenVINO INT8 quantization")
        from nncf.quantization.advanced_parameters import (
            AdvancedQuantizationParameters,
            QuantizationParameters,
        )

        from leanvision.compression.quantize.calibration import nncf_subset_size

        advanced = AdvancedQuantizationParameters(
            backend_params={"compress_weights": False},  # keep FP32 weights for restore_fp32
            weights_quantization_params=QuantizationParameters(per_channel=options.per_channel),
        )
        scope = nncf.IgnoredScope(names=[n.node for n in ignored], validate=True) if ignored else None
        # NNCF draws its progress bars on stdout, where leanvision prints results: use stderr.
        with quiet("nncf"), contextlib.redirect_stdout(sys.stderr):
            return nncf.quantize(
                model, nncf.Dataset(calibration), preset=nncf.QuantizationPreset(options.nncf_preset.value),
                target_device=nncf.TargetDevice.CPU, subset_size=nncf_subset_size(images),
                fast_bias_correction=True, ignored_scope=scope, advanced_parameters=advanced,
            )

    def restore_fp32(self, quantized: Any, fp32: Any, nodes: Sequence[Node]) -> Any:
        """A copy of `quantized` whose `nodes` read their inputs unquantized."""
        del fp32  # the FP32 inputs are still in the graph, behind each FakeQuantize
        model = quantized.clone()
        ops = _by_name(model)
        for node in nodes:
            op = ops[node.node]
            for port, fq in _fq_inputs(op):
                op.input(port).replace_source_output(fq.input_value(0))
        model.validate_nodes_and_infer_types()
        return model

    def switchable(self, quantized: Any, fp32: Any, layers: Sequence[Node]) -> Any:
        """A copy of `quantized` with a boolean input `SWITCH_INPUT` of shape (len(layers),):
        where it is True, that layer reads its inputs unquantized."""
        del fp32
        ov, ops = _ov(), _ops()
        model = quantized.clone()
        by_name = _by_name(model)
        switch = ops.parameter([len(layers)], ov.Type.boolean, name=SWITCH_INPUT)
        switch.output(0).set_names({SWITCH_INPUT})
        axis = ops.constant(np.int64(0))
        for index, layer in enumerate(layers):
            op = by_name[layer.node]
            keep = ops.gather(switch, ops.constant(np.int64(index)), axis)
            for port, fq in _fq_inputs(op):
                chosen = ops.select(keep, fq.input_value(0), fq.output(0))
                op.input(port).replace_source_output(chosen.output(0))
        model.add_parameters([switch])
        model.validate_nodes_and_infer_types()
        return model

    def graph_order(self, model: Any) -> list[tuple[str, list[str]]]:
        """(node name, consumer names) in topological order (names without /WithoutBiases)."""
        order = []
        for op in model.get_ordered_ops():
            if op.get_type_name() in SKIPPED_OPS:
                continue
            consumers = [t.get_node().get_friendly_name().removesuffix(BIAS_SUFFIX)
                         for port in op.outputs() for t in port.get_target_inputs()]
            order.append((op.get_friendly_name().removesuffix(BIAS_SUFFIX), consumers))
        return order

    def with_output(self, model: Any, name: str) -> Any:
        """A copy of `model` with node `name`'s first output added as output `FEATURE_OUTPUT`."""
        copy = model.clone()
        ops = {op.get_friendly_name().removesuffix(BIAS_SUFFIX): op for op in copy.get_ordered_ops()}
        port = ops[name].output(0)
        port.add_names({FEATURE_OUTPUT})
        copy.add_outputs([port])
        return copy

    def runner(self, model: Any, precision: PrecisionHint = PrecisionHint.FP32) -> Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]:
        """Compile `model` for the CPU; the returned function maps input name -> array to
        output name -> array. `precision` is the floating-point precision of what is not INT8."""
        ov = _ov()
        element = ov.Type.bf16 if precision is PrecisionHint.BF16 else ov.Type.f32
        config = {ov.properties.hint.inference_precision: element,
                  ov.properties.hint.performance_mode: ov.properties.hint.PerformanceMode.LATENCY}
        compiled = ov.Core().compile_model(model, "CPU", config)
        # An output may carry several tensor names (an added output keeps its old name too).
        names = [sorted(port.get_names()) or [f"output{i}"] for i, port in enumerate(compiled.outputs)]
        request = compiled.create_infer_request()

        def run(feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
            request.infer(dict(feeds))
            outputs = {}
            for i, aliases in enumerate(names):
                value = np.array(request.get_output_tensor(i).data)
                outputs.update(dict.fromkeys(aliases, value))
            return outputs

        return run

    def input_name(self, model: Any) -> str:
        port = model.inputs[0]
        return port.get_any_name() if port.get_names() else "input"

    def save(self, model: Any, out_dir: Path) -> list[Path]:
        """Write `model.xml`/`.bin` with int8 weights (FP32 where not quantized)."""
        ov = _ov()
        from openvino._offline_transformations import compress_quantize_weights_transformation

        copy = model.clone()
        compress_quantize_weights_transformation(copy)
        out_dir.mkdir(parents=True, exist_ok=True)
        ov.save_model(copy, str(out_dir / "model.xml"), compress_to_fp16=False)
        return [out_dir / name for name in self.output_files]
