"""ONNX Runtime backend: static QDQ quantization (`quantize_static`) and surgery on Q/DQ pairs.

ONNX Runtime marks INT8 with QuantizeLinear -> DequantizeLinear pairs in front of each
quantized input (weights as int8 initializers -> DequantizeLinear). Node names survive
quantization, so a node's FP32 inputs are found in the FP32 graph under the same node name:
restoring a node to FP32 points its inputs back at the FP32 tensors (activations are still
in the graph, in front of the QuantizeLinear; weights and biases are copied from the FP32
graph). `quantize_static`'s `nodes_to_exclude` alone is not enough: an excluded node whose
input tensor is quantized for another consumer is rewired to the shared DequantizeLinear
(measured: `fpn.inner_blocks.0.0/Conv` excluded still read int8 C3), so `quantize` restores
the excluded nodes afterwards.

`switchable` puts `Where(keep[i], fp32 input, dequantized input)` in front of each layer,
driven by a boolean model input, so one session scores every "one layer kept FP32" variant;
the Where keeps ONNX Runtime from fusing the Q/DQ pattern into integer kernels, so that
graph emulates INT8 in float.

Preprocessing: `quant_pre_process` with its optimizer skipped (shape inference only): the
ONNX Runtime optimizer would fuse and rename nodes, and the node names are the interface.
"""

from __future__ import annotations

import copy
import logging
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from leanvision.compression.quantize.groups import Node, group_of
from leanvision.compression.quantize.logs import quiet
from leanvision.compression.quantize.options import AdvancedOptions, OrtMethod
from leanvision.core.deps import require
from leanvision.core.errors import ModelError
from leanvision.runtime import Backend, PrecisionHint

logger = logging.getLogger(__name__)

LAYER_OPS = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm"})
QUANT_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul",
                       "ConvInteger", "MatMulInteger"})
SWITCH_INPUT = "lv_keep_fp32"
FEATURE_OUTPUT = "lv_features"


def _onnx() -> Any:
    return require("onnx", extra="train", purpose="ONNX Runtime quantization")


def _node_map(model: Any) -> dict[str, Any]:
    return {node.name: node for node in model.graph.node}


class _Reader:
    """ONNX Runtime's CalibrationDataReader protocol over one-image batches."""

    def __init__(self, input_name: str, batches: Iterable[np.ndarray]) -> None:
        self._name = input_name
        self._items = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._items, None)
        return None if batch is None else {self._name: batch}


def _available(model: Any) -> set[str]:
    """Tensor names defined in `model`: graph inputs, initializers and node outputs."""
    graph = model.graph
    return ({i.name for i in graph.input} | {i.name for i in graph.initializer}
            | {o for node in graph.node for o in node.output})


class _Fp32Sources:
    """Makes the FP32 graph's tensors available in a quantized graph.

    A tensor of the quantized graph stands for the FP32 tensor of the same name when it is a
    graph input, an initializer of both graphs, or the output of the same-named node in
    both. Otherwise (a weight ORT replaced by int8 + DequantizeLinear, a bias whose
    DequantizeLinear output took the FP32 name, an activation ORT removed) it is re-created
    from the FP32 graph, under `<name>/fp32` when the name is taken: initializers are copied,
    producing nodes re-created recursively.
    """

    def __init__(self, target: Any, fp32: Any) -> None:
        self.target = target
        self.present = _available(target)
        self.inputs = {i.name for i in target.graph.input}
        self.target_inits = {i.name for i in target.graph.initializer}
        self.target_producers = {o: node.name for node in target.graph.node for o in node.output}
        self.initializers = {init.name: init for init in fp32.graph.initializer}
        self.producers = {o: node for node in fp32.graph.node for o in node.output}
        self.memo: dict[str, str] = {}

    def same(self, name: str) -> bool:
        if name in self.inputs or (name in self.target_inits and name in self.initializers):
            return True
        producer = self.producers.get(name)
        return producer is not None and self.target_producers.get(name) == producer.name

    def _fresh(self, name: str) -> str:
        alias = name if name not in self.present else f"{name}/fp32"
        self.present.add(alias)
        return alias

    def provide(self, name: str, new_nodes: list[Any]) -> str:
        """The quantized graph's name for FP32 tensor `name`; nodes it needs are appended
        to `new_nodes` (to insert, in order, before the consumer)."""
        if not name or self.same(name):
            return name
        if name not in self.memo:
            self.memo[name] = self._recreate(name, new_nodes)
        return self.memo[name]

    def _recreate(self, name: str, new_nodes: list[Any]) -> str:
        if name in self.initializers:
            alias = self._fresh(name)
            init = copy.deepcopy(self.initializers[name])
            init.name = alias
            self.target.graph.initializer.append(init)
            return alias
        if name not in self.producers:
            raise ModelError(f"tensor {name!r} of the FP32 graph cannot be restored in the quantized graph")
        node = copy.deepcopy(self.producers[name])
        inputs = [self.provide(i, new_nodes) for i in node.input]
        del node.input[:]
        node.input.extend(inputs)
        outputs = [self._fresh(o) for o in node.output]
        for original, alias in zip(list(node.output), outputs, strict=True):
            self.memo[original] = alias
        del node.output[:]
        node.output.extend(outputs)
        node.name = f"{node.name}/fp32"
        new_nodes.append(node)
        return self.memo[name]


def _changed_inputs(qnode: Any, fnode: Any, sources: _Fp32Sources) -> list[int]:
    """Input positions where the quantized node does not read the FP32 node's tensor."""
    return [i for i, (q, f) in enumerate(zip(qnode.input, fnode.input, strict=False))
            if f and (q != f or not sources.same(f))]


def prune(model: Any) -> Any:
    """Remove nodes and initializers nothing reads any more (left by `restore_fp32`)."""
    graph = model.graph
    needed = {o.name for o in graph.output}
    kept = []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(node.input)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    unused = [init for init in graph.initializer if init.name not in needed]
    for init in unused:
        graph.initializer.remove(init)
    return model


class OnnxRuntimeQuantizer:
    """ONNX Runtime static quantization of `model.onnx` to an INT8 QDQ `model.onnx`."""

    backend = Backend.ONNXRUNTIME
    model_files = ("model.onnx",)
    output_files = ("model.onnx",)

    def read(self, model_dir: Path) -> Any:
        onnx = _onnx()
        path = model_dir / "model.onnx"
        if not path.is_file():
            hint = "; this directory holds an OpenVINO IR: export with --format onnx" if (model_dir / "model.xml").is_file() else ""
            raise ModelError(f"ONNX Runtime quantizes model.onnx, which is missing{hint}", path=model_dir)
        try:
            return onnx.load(str(path))
        except Exception as exc:  # protobuf decode errors share no public base class
            raise ModelError(f"cannot read the model: {str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}",
                             path=path) from None

    def nodes(self, model: Any, groups: Mapping[str, str]) -> list[Node]:
        return [Node(n.name, n.name, n.op_type, group_of(n.name, groups), n.op_type in LAYER_OPS)
                for n in model.graph.node]

    def is_quantized(self, model: Any) -> bool:
        return any(node.op_type in QUANT_OPS for node in model.graph.node)

    def quantized_nodes(self, model: Any) -> set[str]:
        """Nodes with at least one input produced by a DequantizeLinear."""
        dequantized = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
        return {n.name for n in model.graph.node
                if n.op_type not in QUANT_OPS and any(i in dequantized for i in n.input)}

    def quantize(self, model: Any, calibration: Iterable[np.ndarray], *, images: int, ignored: Sequence[Node],
                 options: AdvancedOptions, reduce_range: bool) -> Any:
        """`quantize_static` (QDQ, u8 activations, s8 weights) from `images` one-image batches.

        The output tail (the reshapes and concatenations after the last layers) stays FP32,
        as NNCF leaves it: ONNX Runtime would otherwise round the model's outputs themselves
        to 8 bits (all anchors' logits on one scale).
        """
        del images  # ONNX Runtime reads the calibration batches until they run out
        ignored = [*ignored, *output_tail(model)]
        onnx = _onnx()
        quant = require("onnxruntime.quantization", extra="deploy", purpose="ONNX Runtime quantization")
        methods = {OrtMethod.MINMAX: quant.CalibrationMethod.MinMax, OrtMethod.ENTROPY: quant.CalibrationMethod.Entropy,
                   OrtMethod.PERCENTILE: quant.CalibrationMethod.Percentile}
        with tempfile.TemporaryDirectory(prefix="leanvision-ort-") as tmp:
            source, prepared, target = Path(tmp) / "fp32.onnx", Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
            onnx.save(model, str(source))
            with quiet("", "onnxruntime"):
                _quantize_static(quant, source, prepared, target, methods[options.ort_calibration],
                                 _Reader(self.input_name(model), calibration), options, reduce_range, ignored)
            quantized = onnx.load(str(target))
        return self.restore_fp32(quantized, model, ignored) if ignored else quantized

    def restore_fp32(self, quantized: Any, fp32: Any, nodes: Sequence[Node]) -> Any:
        """A copy of `quantized` whose `nodes` read the FP32 graph's inputs (unquantized)."""
        model = copy.deepcopy(quantized)
        qnodes, fnodes = _node_map(model), _node_map(fp32)
        sources = _Fp32Sources(model, fp32)
        inserted: dict[str, list[Any]] = {}
        for node in nodes:
            qnode, fnode = qnodes[node.node], fnodes[node.node]
            new: list[Any] = []
            for i in _changed_inputs(qnode, fnode, sources):
                qnode.input[i] = sources.provide(fnode.input[i], new)
            inserted[node.node] = new
        _insert_before(model, inserted)
        return prune(model)

    def switchable(self, quantized: Any, fp32: Any, layers: Sequence[Node]) -> Any:
        """A copy of `quantized` with a boolean input `SWITCH_INPUT` of shape (len(layers),):
        where it is True, that layer reads its FP32 inputs."""
        onnx = _onnx()
        from onnx import TensorProto, helper, numpy_helper

        model = copy.deepcopy(quantized)
        qnodes, fnodes = _node_map(model), _node_map(fp32)
        model.graph.input.append(helper.make_tensor_value_info(SWITCH_INPUT, TensorProto.BOOL, [len(layers)]))
        sources = _Fp32Sources(model, fp32)
        inserted: dict[str, list[Any]] = {}
        for index, layer in enumerate(layers):
            qnode, fnode = qnodes[layer.node], fnodes[layer.node]
            changed = _changed_inputs(qnode, fnode, sources)
            keep = f"{SWITCH_INPUT}/{index}"
            model.graph.initializer.append(numpy_helper.from_array(np.array(index, np.int64), f"{keep}/index"))
            new = [helper.make_node("Gather", [SWITCH_INPUT, f"{keep}/index"], [keep], name=f"{keep}/Gather", axis=0)]
            for i in changed:
                fp32_input = sources.provide(fnode.input[i], new)
                chosen = f"{keep}/input{i}"
                new.append(helper.make_node("Where", [keep, fp32_input, qnode.input[i]], [chosen], name=f"{chosen}/Where"))
                qnode.input[i] = chosen
            inserted[layer.node] = new
        _insert_before(model, inserted)
        onnx.checker.check_model(model)
        return model

    def graph_order(self, model: Any) -> list[tuple[str, list[str]]]:
        consumers: dict[str, list[str]] = {}
        for node in model.graph.node:
            for name in node.input:
                consumers.setdefault(name, []).append(node.name)
        return [(n.name, [c for o in n.output for c in consumers.get(o, [])]) for n in model.graph.node]

    def with_output(self, model: Any, name: str) -> Any:
        """A copy of `model` whose node `name`'s first output is also graph output
        `FEATURE_OUTPUT` (through an Identity)."""
        from onnx import TensorProto, helper

        copy_ = copy.deepcopy(model)
        tensor = _node_map(copy_)[name].output[0]
        copy_.graph.node.append(helper.make_node("Identity", [tensor], [FEATURE_OUTPUT], name=FEATURE_OUTPUT))
        copy_.graph.output.append(helper.make_tensor_value_info(FEATURE_OUTPUT, TensorProto.FLOAT, None))
        return copy_

    def runner(self, model: Any, precision: PrecisionHint = PrecisionHint.FP32) -> Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]:
        """An ONNX Runtime CPU session on `model` (ONNX Runtime computes in fp32 only)."""
        del precision
        ort = require("onnxruntime", extra="deploy", purpose="ONNX Runtime quantization")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]

        def run(feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
            return dict(zip(names, session.run(None, dict(feeds)), strict=True))

        return run

    def input_name(self, model: Any) -> str:
        initializers = {i.name for i in model.graph.initializer}
        return next(i.name for i in model.graph.input if i.name not in initializers)

    def save(self, model: Any, out_dir: Path) -> list[Path]:
        onnx = _onnx()
        out_dir.mkdir(parents=True, exist_ok=True)
        onnx.save(model, str(out_dir / "model.onnx"))
        return [out_dir / "model.onnx"]


def output_tail(model: Any) -> list[Node]:
    """The nodes after the last layers: no weighted layer is reachable from them."""
    consumers: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    feeds_layer: dict[str, bool] = {}
    for node in reversed(model.graph.node):  # topological order reversed: consumers first
        feeds_layer[node.name] = any(c.op_type in LAYER_OPS or feeds_layer.get(c.name, False)
                                     for o in node.output for c in consumers.get(o, []))
    return [Node(n.name, n.name, n.op_type) for n in model.graph.node
            if n.op_type not in LAYER_OPS and not feeds_layer[n.name]]


def _quantize_static(quant: Any, source: Path, prepared: Path, target: Path, method: Any, reader: _Reader,
                     options: AdvancedOptions, reduce_range: bool, ignored: Sequence[Node]) -> None:
    quant.quant_pre_process(str(source), str(prepared), skip_optimization=True)
    quant.quantize_static(
        str(prepared), str(target), reader, quant_format=quant.QuantFormat.QDQ, per_channel=options.per_channel,
        reduce_range=reduce_range, activation_type=quant.QuantType.QUInt8, weight_type=quant.QuantType.QInt8,
        calibrate_method=method, nodes_to_exclude=[n.node for n in ignored] or None,
        # Keep ReLU / Clip in the file: their tensor names then keep their meaning, which
        # restore_fp32 relies on; ONNX Runtime still folds a ReLU or Clip followed by a
        # QuantizeLinear into it when it loads the model (its QDQ graph transformers).
        extra_options={"QDQKeepRemovableActivations": True},
    )


def _insert_before(model: Any, inserted: Mapping[str, list[Any]]) -> None:
    """Put each list of new nodes just before the node it feeds (keeps topological order)."""
    nodes = list(model.graph.node)
    del model.graph.node[:]
    for node in nodes:
        model.graph.node.extend(inserted.get(node.name, []))
        model.graph.node.append(node)
