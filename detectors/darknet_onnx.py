"""Darknet (.cfg + .weights) to ONNX, built with ``onnx.helper`` so no third-party converter is trusted.

Supports what YOLOv4-tiny uses: convolution with batch-norm folded into the weights, leaky ReLU,
max-pool, route (concat, and channel split via ``groups``/``group_id``), upsample and YOLO heads.
The graph ends at the raw head tensors (one per ``[yolo]`` section); decoding into boxes is done in
:mod:`detectors.yolo_decode`, where it is shared with the OpenCV reference path. Batch, height and
width are dynamic so one model serves any letterbox size that is a multiple of 32.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

_BN_EPS = 1e-6  # darknet's normalize_cpu epsilon
_LEAKY_ALPHA = 0.1


@dataclass(frozen=True)
class YoloHead:
    """Parameters of one ``[yolo]`` section needed to decode its output tensor."""

    output: str
    anchors: tuple[tuple[float, float], ...]
    classes: int
    scale_x_y: float


@dataclass
class ConvertedModel:
    """An ONNX model plus what its outputs mean."""

    model: onnx.ModelProto
    heads: list[YoloHead] = field(default_factory=list)
    input_size: tuple[int, int] = (416, 416)  # (width, height) from the cfg's [net]


def parse_cfg(text: str) -> list[dict[str, str]]:
    """Sections of a Darknet cfg in order, each a dict with ``type`` plus its keys."""
    sections: list[dict[str, str]] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            sections.append({"type": line.strip("[]").strip()})
        else:
            key, value = line.split("=", 1)
            sections[-1][key.strip()] = value.strip()
    return sections


class _Weights:
    def __init__(self, path: Path) -> None:
        data = path.read_bytes()
        major, minor, _ = np.frombuffer(data[:12], dtype=np.int32)
        header = 20 if major * 10 + minor >= 2 else 16
        self.values = np.frombuffer(data[header:], dtype=np.float32)
        self.pos = 0

    def take(self, count: int) -> np.ndarray:
        if self.pos + count > self.values.size:
            raise ValueError("weights file is shorter than the cfg needs")
        out = self.values[self.pos : self.pos + count].copy()
        self.pos += count
        return out


def convert(cfg_path: Path, weights_path: Path, opset: int = 13) -> ConvertedModel:
    """Build the ONNX graph for a Darknet model; raises on layers it does not know."""
    sections = parse_cfg(cfg_path.read_text())
    net, layers = sections[0], sections[1:]
    weights = _Weights(weights_path)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    outputs: list[str] = []  # tensor name of each layer's output
    channels: list[int] = []
    heads: list[YoloHead] = []
    prev, prev_c = "images", int(net.get("channels", 3))

    for i, layer in enumerate(layers):
        kind, name = layer["type"], f"l{i}"
        if kind == "convolutional":
            filters, size = int(layer["filters"]), int(layer["size"])
            stride = int(layer.get("stride", 1))
            pad = size // 2 if int(layer.get("pad", 0)) else int(layer.get("padding", 0))
            bias = weights.take(filters)
            if int(layer.get("batch_normalize", 0)):
                scale, mean, var = weights.take(filters), weights.take(filters), weights.take(filters)
                kernel = weights.take(filters * prev_c * size * size).reshape(filters, prev_c, size, size)
                factor = scale / np.sqrt(var + _BN_EPS)
                kernel = kernel * factor[:, None, None, None]
                bias = bias - mean * factor
            else:
                kernel = weights.take(filters * prev_c * size * size).reshape(filters, prev_c, size, size)
            inits += [numpy_helper.from_array(kernel.astype(np.float32), f"{name}_w"),
                      numpy_helper.from_array(bias.astype(np.float32), f"{name}_b")]
            out = f"{name}_conv"
            nodes.append(helper.make_node("Conv", [prev, f"{name}_w", f"{name}_b"], [out], kernel_shape=[size, size],
                                          strides=[stride, stride], pads=[pad] * 4))
            activation = layer.get("activation", "linear")
            if activation == "leaky":
                nodes.append(helper.make_node("LeakyRelu", [out], [f"{name}_act"], alpha=_LEAKY_ALPHA))
                out = f"{name}_act"
            elif activation != "linear":
                raise NotImplementedError(f"activation {activation!r} in layer {i}")
            prev, prev_c = out, filters
        elif kind == "maxpool":
            size, stride = int(layer["size"]), int(layer.get("stride", 1))
            total = int(layer.get("padding", size - 1)) if stride == 1 else 0
            pads = [total // 2, total // 2, total - total // 2, total - total // 2]
            nodes.append(helper.make_node("MaxPool", [prev], [f"{name}_pool"], kernel_shape=[size, size],
                                          strides=[stride, stride], pads=pads))
            prev = f"{name}_pool"
        elif kind == "route":
            refs = [int(v) for v in layer["layers"].split(",")]
            idx = [r + i if r < 0 else r for r in refs]
            groups = int(layer.get("groups", 1))
            if groups > 1:
                if len(idx) != 1:
                    raise NotImplementedError(f"grouped route over several layers in layer {i}")
                src_c = channels[idx[0]]
                part = src_c // groups
                gid = int(layer.get("group_id", 0))
                inits += [numpy_helper.from_array(np.array([gid * part], np.int64), f"{name}_s"),
                          numpy_helper.from_array(np.array([(gid + 1) * part], np.int64), f"{name}_e"),
                          numpy_helper.from_array(np.array([1], np.int64), f"{name}_ax")]
                nodes.append(helper.make_node("Slice", [outputs[idx[0]], f"{name}_s", f"{name}_e", f"{name}_ax"],
                                              [f"{name}_split"]))
                prev, prev_c = f"{name}_split", part
            elif len(idx) == 1:
                prev, prev_c = outputs[idx[0]], channels[idx[0]]
            else:
                nodes.append(helper.make_node("Concat", [outputs[j] for j in idx], [f"{name}_cat"], axis=1))
                prev, prev_c = f"{name}_cat", sum(channels[j] for j in idx)
        elif kind == "upsample":
            stride = float(layer.get("stride", 2))
            inits.append(numpy_helper.from_array(np.array([1, 1, stride, stride], np.float32), f"{name}_scales"))
            nodes.append(helper.make_node("Resize", [prev, "", f"{name}_scales"], [f"{name}_up"], mode="nearest"))
            prev = f"{name}_up"
        elif kind == "yolo":
            anchors = [float(v) for v in layer["anchors"].split(",")]
            pairs = [(anchors[2 * m], anchors[2 * m + 1]) for m in (int(v) for v in layer["mask"].split(","))]
            head_out = f"yolo{len(heads)}"
            nodes.append(helper.make_node("Identity", [prev], [head_out]))
            heads.append(YoloHead(head_out, tuple(pairs), int(layer["classes"]), float(layer.get("scale_x_y", 1.0))))
        else:
            raise NotImplementedError(f"darknet layer [{kind}] (layer {i})")
        outputs.append(prev)
        channels.append(prev_c)

    if weights.pos != weights.values.size:
        raise ValueError(f"{weights.values.size - weights.pos} weights left unread: cfg and weights do not match")
    graph = helper.make_graph(
        nodes, "darknet",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info(h.output, TensorProto.FLOAT,
                                       ["batch", len(h.anchors) * (5 + h.classes), f"{h.output}_h", f"{h.output}_w"])
         for h in heads],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="ioc.darknet_onnx")
    model.ir_version = 8
    onnx.checker.check_model(model)
    size = (int(net.get("width", 416)), int(net.get("height", 416)))
    return ConvertedModel(model, heads, size)
