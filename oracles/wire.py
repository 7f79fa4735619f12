"""How batches and answers travel as JSON between :class:`~oracles.http_oracle.HTTPOracle` and the server.

Three encodings of float arrays:

* ``"binary"`` — the request body *is* the array: raw little-endian bytes,
  ``Content-Type: application/octet-stream``, shape and dtype in the
  ``X-Array-Shape`` / ``X-Array-Dtype`` headers. No text encoding at all on
  either side: the cheapest, and what :class:`~oracles.http_oracle.HTTPOracle`
  sends to ``blackbox-rp serve`` by default. (Answers stay JSON; they are small.)
* ``"base64"`` — ``{"dtype": "float32", "shape": [...], "b64": "..."}``: the raw
  little-endian bytes, base64'd. 33% larger than binary but ~50x cheaper to
  encode and parse than nested lists, and bit-exact (the journal keys and the
  finite differences of the optimizers depend on the exact float32 values).
* ``"lists"`` — plain nested JSON lists: what most third-party APIs take.

Decoding accepts either form, so a client and a server need not agree on more
than the field names.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from blackbox_rp.exposure import NEEDS, Response

__all__ = ["ENCODINGS", "BINARY", "SHAPE_HEADER", "DTYPE_HEADER", "encode_array", "decode_array", "encode_binary",
           "decode_binary", "response_to_json", "response_from_json", "get_path"]

ENCODINGS = ("binary", "base64", "lists")
BINARY = "application/octet-stream"
SHAPE_HEADER = "x-array-shape"
DTYPE_HEADER = "x-array-dtype"


def encode_array(x: np.ndarray, encoding: str) -> Any:
    """A JSON-able form of ``x`` (``"base64"`` or ``"lists"``; binary bodies use :func:`encode_binary`)."""
    if encoding == "base64":
        a = np.ascontiguousarray(x)
        dt = a.dtype.newbyteorder("<")
        return {"dtype": np.dtype(a.dtype).name, "shape": list(a.shape),
                "b64": base64.b64encode(a.astype(dt, copy=False).tobytes()).decode("ascii")}
    if encoding == "lists":
        return x.tolist()
    raise ValueError(f"cannot put an array in JSON as {encoding!r}; use base64 or lists")


_DTYPES = {"float32": np.float32, "float64": np.float64, "int64": np.int64, "int32": np.int32}


def decode_array(obj: Any, dtype: type) -> np.ndarray:
    """An array from either encoding; raises ValueError for anything else."""
    if isinstance(obj, dict):
        try:
            src = np.dtype(_DTYPES[obj["dtype"]]).newbyteorder("<")
            shape = tuple(int(s) for s in obj["shape"])
            raw = base64.b64decode(obj["b64"], validate=True)
        except (KeyError, TypeError) as e:
            raise ValueError(f"a base64 array needs dtype (one of {sorted(_DTYPES)}), shape and b64 ({e})") from None
        except Exception as e:  # binascii.Error
            raise ValueError(f"b64 field is not valid base64 ({e})") from None
        if any(s < 0 for s in shape) or int(np.prod(shape)) * src.itemsize != len(raw):
            raise ValueError(f"b64 holds {len(raw)} bytes, which does not fit shape {list(shape)} of {obj['dtype']}")
        return np.frombuffer(raw, dtype=src).reshape(shape).astype(dtype)
    try:
        with np.errstate(over="ignore"):  # 1e300 in float32 is inf, which the input check refuses by name
            a = np.asarray(obj, dtype=dtype)
    except (TypeError, ValueError, OverflowError) as e:
        raise ValueError(f"expected a numeric (nested) list, got {type(obj).__name__} ({e})") from None
    return a


def encode_binary(x: np.ndarray) -> tuple[bytes, dict[str, str]]:
    """(body, headers) of a binary request."""
    a = np.ascontiguousarray(x)
    a = a.astype(a.dtype.newbyteorder("<"), copy=False)
    return a.tobytes(), {"Content-Type": BINARY, SHAPE_HEADER: ",".join(map(str, a.shape)),
                         DTYPE_HEADER: np.dtype(x.dtype).name}


def decode_binary(raw: bytes, shape: str | None, dtype_name: str | None, dtype: type) -> np.ndarray:
    """The array of a binary request; ValueError naming what is wrong."""
    if dtype_name not in _DTYPES:
        raise ValueError(f"binary inputs need the {DTYPE_HEADER} header, one of {sorted(_DTYPES)}")
    try:
        dims = tuple(int(s) for s in (shape or "").split(","))
    except ValueError:
        raise ValueError(f"binary inputs need the {SHAPE_HEADER} header, e.g. '8,1,28,28'") from None
    src = np.dtype(_DTYPES[dtype_name]).newbyteorder("<")
    if any(d < 0 for d in dims) or int(np.prod(dims)) * src.itemsize != len(raw):
        raise ValueError(f"the body holds {len(raw)} bytes, which does not fit shape {list(dims)} of {dtype_name}")
    return np.frombuffer(raw, dtype=src).reshape(dims).astype(dtype)


def response_to_json(r: Response, encoding: str) -> dict[str, Any]:
    """The server's answer body for a response."""
    out: dict[str, Any] = {"kind": r.kind, "num_classes": r.num_classes, "labels": r.labels.tolist()}
    if r.scores is not None:
        out["scores"] = encode_array(r.scores.astype(np.float32), encoding)
    if r.indices is not None:
        out["indices"] = r.indices.tolist()
    return out


def get_path(obj: Any, path: str) -> Any:
    """``obj["a"]["b"][0]`` for ``path="a.b.0"``; KeyError naming the missing part."""
    cur = obj
    for part in path.split("."):
        if isinstance(cur, list) and part.lstrip("-").isdigit():
            cur = cur[int(part)]
        elif isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            raise KeyError(f"answer has no {path!r} (missing {part!r})")
    return cur


def response_from_json(body: Any, *, kind: str, num_classes: int, n: int, scores_field: str | None,
                       labels_field: str | None, indices_field: str | None) -> Response:
    """Read an answer of ``n`` inputs; ValueError/KeyError on anything malformed."""
    if kind not in NEEDS:
        raise ValueError(f"unknown answer kind {kind!r}")
    scores = indices = labels = None
    if kind in ("logits", "probs", "topk"):
        if scores_field is None:
            raise ValueError(f"a {kind} answer needs a scores field")
        scores = decode_array(get_path(body, scores_field), np.float32)
    if kind == "topk":
        if indices_field is None:
            raise ValueError("a topk answer needs an indices field")
        indices = decode_array(get_path(body, indices_field), np.int64)
    if labels_field is not None:
        try:
            labels = decode_array(get_path(body, labels_field), np.int64)
        except KeyError:
            if kind == "label":
                raise
    if kind == "label" and labels is None:
        raise ValueError("a label answer needs a labels field")
    if scores is not None:
        if kind in ("logits", "probs") and scores.shape != (n, num_classes):
            raise ValueError(f"scores have shape {scores.shape}, expected {(n, num_classes)} for {n} inputs")
        if scores.ndim != 2 or scores.shape[0] != n:
            raise ValueError(f"scores have shape {scores.shape}, expected ({n}, k) for {n} inputs")
        if not np.isfinite(scores).all():
            raise ValueError("scores contain NaN or inf")
    if indices is not None:
        if indices.shape != scores.shape:
            raise ValueError(f"indices shape {indices.shape} differs from scores shape {scores.shape}")
        if indices.size and (indices.min() < 0 or indices.max() >= num_classes):
            raise ValueError(f"indices outside [0, {num_classes})")
    if labels is None:
        labels = scores.argmax(axis=1) if kind != "topk" else indices[:, 0]
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} inputs")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels outside [0, {num_classes})")
    return Response(kind, num_classes, labels, scores, indices)
