#!/usr/bin/python3
"""Dynamic int8 quantization of the fp32 ONNX export (export_onnx.py) for the ORT int8 peer (#15).

    quantize_onnx.py --in FP32.onnx --out INT8.onnx [--activations per-tensor|per-token]
                     [--no-embeddings]

onnxruntime's python package (and so onnxruntime.quantization.quantize_dynamic) is not available
here; this script writes the graph quantize_dynamic(model, weight_type=QInt8, per_channel=True)
produces, with Debian's python3-onnx and numpy only:

  * every MatMul whose B is a float initializer [K, N] (the linear layers; the attention products
    Q·Kᵀ and P·V have no constant operand and stay float, as quantize_dynamic leaves them):
      weights  B_q = round(B / s_w) int8, s_w[n] = max_k |B[k, n]| / 127 (symmetric, per output
               column, round half to even, full range [-127, 127], zero point 0 given as an int8
               [N] initializer — quantize_dynamic's per-channel QInt8 weights, reduce_range off)
      activations, --activations per-tensor (default; quantize_dynamic's exact form):
               x_q, s_x, z_x = DynamicQuantizeLinear(x)          (uint8, one scale per tensor)
               y = Mul(Cast(MatMulInteger(x_q, B_q, z_x, 0_N)), Mul(s_x, s_w))
      --activations per-token (what issue #15 asks the peer to do: one scale per row, symmetric,
               like our int8 path). DynamicQuantizeLinear and MatMulInteger's a_zero_point are
               per-tensor in ORT, so the row scale is computed with standard ops and the uint8
               offset 128 is a scalar zero point:
               a = Max(ReduceMax(x), -ReduceMin(x)) per row, s = max(a, tiny) / 127   [M, 1]
               x_q = QuantizeLinear(Reshape(x, [M, K]), Reshape(s, [M]), 128_M, axis=0)  uint8
               y = Reshape(Mul(Mul(Cast(MatMulInteger(x_q, B_q, 128, 0_N)), s), s_w), [.., N])
  * the word-embedding Gather (as quantize_dynamic's Gather rule does, unless --no-embeddings):
    table int8 symmetric per tensor, Gather then DequantizeLinear.

The float initializers replaced are dropped. Prints a JSON summary (MatMuls quantized / left float,
bytes of initializers before and after).
"""
import argparse
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def quantize_columns(w):
    """[K, N] float -> (int8 [K, N], float32 scale [N]); symmetric, per column, half to even."""
    amax = np.abs(w).max(axis=0).astype(np.float32)
    scale = (amax / np.float32(127.0)).astype(np.float32)
    safe = np.where(scale > 0, scale, np.float32(1.0))
    q = np.clip(np.round(w / safe[None, :]), -127, 127).astype(np.int8)
    return q, scale


def quantize_tensor(w):
    """float array -> (int8, scalar float32 scale); symmetric per tensor."""
    amax = np.float32(np.abs(w).max())
    scale = np.float32(amax / 127.0) if amax > 0 else np.float32(1.0)
    return np.clip(np.round(w / scale), -127, 127).astype(np.int8), scale


class Builder:
    def __init__(self, model, activations):
        self.model = model
        self.g = model.graph
        self.inits = {t.name: t for t in self.g.initializer}
        self.new_inits = []
        self.activations = activations
        self.quantized_acts = {}  # activation name -> its quantized outputs (shared by MatMuls)
        self.quantized_weights = {}
        self.consts = {}
        self.n = 0

    def uniq(self, base):
        self.n += 1
        return "%s_q%d" % (base, self.n)

    def const(self, name, arr):
        if name not in self.consts:
            self.new_inits.append(numpy_helper.from_array(arr, name))
            self.consts[name] = name
        return name

    def weight(self, name):
        if name not in self.quantized_weights:
            w = numpy_helper.to_array(self.inits[name])
            q, s = quantize_columns(w)
            qn, sn, zn = name + "_quantized", name + "_scale", name + "_zero_point"
            self.new_inits += [numpy_helper.from_array(q, qn), numpy_helper.from_array(s, sn),
                               numpy_helper.from_array(np.zeros(q.shape[1], np.int8), zn)]
            self.quantized_weights[name] = (qn, sn, zn, q.shape)
        return self.quantized_weights[name]

    def matmul_per_tensor(self, node, nodes):
        x, y = node.input[0], node.output[0]
        qn, sn, zn, _ = self.weight(node.input[1])
        if x not in self.quantized_acts:
            xq, xs, xz = x + "_quantized", x + "_scale", x + "_zero_point"
            nodes.append(helper.make_node("DynamicQuantizeLinear", [x], [xq, xs, xz], x + "_QuantizeLinear"))
            self.quantized_acts[x] = (xq, xs, xz)
        xq, xs, xz = self.quantized_acts[x]
        base = self.uniq(y)
        nodes += [
            helper.make_node("MatMulInteger", [xq, qn, xz, zn], [base + "_i32"], base + "_MatMulInteger"),
            helper.make_node("Cast", [base + "_i32"], [base + "_f32"], base + "_Cast", to=TensorProto.FLOAT),
            helper.make_node("Mul", [xs, sn], [base + "_scales"], base + "_scales_mul"),
            helper.make_node("Mul", [base + "_f32", base + "_scales"], [y], base + "_output_scale_mul"),
        ]

    def matmul_per_token(self, node, nodes):
        x, y = node.input[0], node.output[0]
        qn, sn, zn, (K, N) = self.weight(node.input[1])
        c = self.const
        if x not in self.quantized_acts:
            b = x + "_tok"
            nodes += [
                helper.make_node("ReduceMax", [x], [b + "_max"], b + "_ReduceMax", axes=[-1], keepdims=1),
                helper.make_node("ReduceMin", [x], [b + "_min"], b + "_ReduceMin", axes=[-1], keepdims=1),
                helper.make_node("Neg", [b + "_min"], [b + "_nmin"], b + "_Neg"),
                helper.make_node("Max", [b + "_max", b + "_nmin", c("q_tiny", np.array(1e-30, np.float32))],
                                 [b + "_amax"], b + "_Max"),
                helper.make_node("Mul", [b + "_amax", c("q_inv127", np.array(1.0 / 127.0, np.float32))],
                                 [b + "_scale"], b + "_scale_mul"),  # [.., 1]
                helper.make_node("Reshape", [x, c("q_shape_%d" % K, np.array([-1, K], np.int64))], [b + "_2d"],
                                 b + "_Reshape"),
                helper.make_node("Reshape", [b + "_scale", c("q_shape_m1", np.array([-1, 1], np.int64))],
                                 [b + "_scale_col"], b + "_ReshapeCol"),
                helper.make_node("Reshape", [b + "_scale", c("q_shape_flat", np.array([-1], np.int64))],
                                 [b + "_scale_flat"], b + "_ReshapeFlat"),
                helper.make_node("Shape", [b + "_scale_flat"], [b + "_m"], b + "_Shape"),
                helper.make_node("ConstantOfShape", [b + "_m"], [b + "_zp"], b + "_zp",
                                 value=numpy_helper.from_array(np.array([128], np.uint8))),
                helper.make_node("QuantizeLinear", [b + "_2d", b + "_scale_flat", b + "_zp"], [b + "_q"],
                                 b + "_QuantizeLinear", axis=0),
                helper.make_node("Shape", [x], [b + "_xshape"], b + "_ShapeX"),
                helper.make_node("Slice", [b + "_xshape", c("q_zero1", np.array([0], np.int64)),
                                           c("q_minus1", np.array([-1], np.int64))], [b + "_lead"], b + "_Slice"),
            ]
            self.quantized_acts[x] = (b + "_q", b + "_scale_col", b + "_lead")
        xq, s_col, lead = self.quantized_acts[x]
        base = self.uniq(y)
        nodes += [
            helper.make_node("MatMulInteger", [xq, qn, c("q_zp128", np.array(128, np.uint8)), zn], [base + "_i32"],
                             base + "_MatMulInteger"),
            helper.make_node("Cast", [base + "_i32"], [base + "_f32"], base + "_Cast", to=TensorProto.FLOAT),
            helper.make_node("Mul", [base + "_f32", s_col], [base + "_rows"], base + "_row_scale_mul"),
            helper.make_node("Mul", [base + "_rows", sn], [base + "_2d"], base + "_col_scale_mul"),
            helper.make_node("Concat", [lead, c("q_n_%d" % N, np.array([N], np.int64))], [base + "_shape"],
                             base + "_Concat", axis=0),
            helper.make_node("Reshape", [base + "_2d", base + "_shape"], [y], base + "_Reshape"),
        ]

    def gather(self, node, nodes):
        name, y = node.input[0], node.output[0]
        w = numpy_helper.to_array(self.inits[name])
        q, s = quantize_tensor(w)
        qn, sn, zn = name + "_quantized", name + "_scale", name + "_zero_point"
        self.new_inits += [numpy_helper.from_array(q, qn), numpy_helper.from_array(np.array(s, np.float32), sn),
                           numpy_helper.from_array(np.array(0, np.int8), zn)]
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        nodes += [helper.make_node("Gather", [qn, node.input[1]], [y + "_quantized"], node.name + "_quant", **attrs),
                  helper.make_node("DequantizeLinear", [y + "_quantized", sn, zn], [y], node.name + "_dequant")]


def is_float_init(b, name, ndim):
    t = b.inits.get(name)
    return t is not None and t.data_type == TensorProto.FLOAT and len(t.dims) == ndim


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--in", dest="inp", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--activations", choices=("per-tensor", "per-token"), default="per-tensor")
    ap.add_argument("--no-embeddings", action="store_true", help="leave the word-embedding Gather float")
    a = ap.parse_args()
    model = onnx.load(a.inp)
    b = Builder(model, a.activations)
    before = sum(len(t.raw_data) for t in model.graph.initializer)
    nodes, quantized, left = [], 0, 0
    for node in model.graph.node:
        if node.op_type == "MatMul" and is_float_init(b, node.input[1], 2):
            (b.matmul_per_token if a.activations == "per-token" else b.matmul_per_tensor)(node, nodes)
            quantized += 1
        elif node.op_type == "Gather" and not a.no_embeddings and is_float_init(b, node.input[0], 2):
            b.gather(node, nodes)
        else:
            left += node.op_type == "MatMul"
            nodes.append(node)
    if quantized == 0:
        sys.exit("quantize_onnx.py: no MatMul with a constant float weight in %s" % a.inp)
    used = {i for n in nodes for i in n.input}
    keep = [t for t in model.graph.initializer if t.name in used] + b.new_inits
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    onnx.checker.check_model(model)
    tmp = a.out + ".tmp"
    onnx.save(model, tmp)
    os.replace(tmp, a.out)
    after = sum(len(t.raw_data) for t in model.graph.initializer)
    print(json.dumps({"matmul_quantized": quantized, "matmul_float": left, "activations": a.activations,
                      "embeddings": not a.no_embeddings, "initializer_mib_before": before / 2**20,
                      "initializer_mib_after": after / 2**20, "out": a.out}))


if __name__ == "__main__":
    main()
