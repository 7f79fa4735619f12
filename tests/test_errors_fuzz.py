"""Fuzzing the parsers users feed (issue 12): every input gives a value or the module's own error, with a message.

Budgets, exposures, splits, ``--param`` values, every command-line value checker of
``commands/_values.py``, and the wire bodies of a real ``serve`` server on loopback
(predict, completions, chat): never another exception type, never a 500. Examples are
derandomized (the same inputs on every run, so CI is stable) and bounded in number;
``COVERED`` counts the inputs each part tried, checked by the last test.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blackbox_rp import Budget, BudgetExhausted, Ledger
from blackbox_rp.commands import _values
from blackbox_rp.commands._params import parse_params
from blackbox_rp.data import SplitConfig, from_arrays, split_dataset
from blackbox_rp.exposure import Exposure, parse_exposure
from blackbox_rp.optim import REGISTRY, make
from blackbox_rp.optim.chain import InputGradientOptimizer
from blackbox_rp.optim.base import ConfigError

COVERED: Counter = Counter()
FUZZ = settings(derandomize=True, database=None, deadline=None, max_examples=300,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

# every kind of value a user (or a JSON body) can put where a number or a name is expected
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.text(max_size=12), st.integers(-5, 5).map(np.int64), st.floats(-2, 2).map(np.float32))
json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                                     st.floats(allow_nan=False), st.text(max_size=10)),
                           lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                  st.dictionaries(st.text(max_size=6), kids, max_size=4)),
                           max_leaves=12)


def _has_message(e: BaseException) -> None:
    assert str(e).strip(), f"{type(e).__name__} without a message"


# ------------------------------------------------------------------ budgets and the ledger
@FUZZ
@given(q=scalars, c=scalars, cost=scalars,
       phases=st.one_of(st.none(), st.text(max_size=10), st.lists(st.one_of(st.text(max_size=10), scalars),
                                                                      max_size=3),
                        st.sampled_from([("train",), ("train", "validation"), "test", ("baseline", "serve")])))
def test_budgets_are_built_or_refused_with_a_value_error(q, c, cost, phases):
    COVERED["budget"] += 1
    try:
        b = Budget(max_queries=q, max_calls=c, max_cost=cost, phases=phases)
    except ValueError as e:
        _has_message(e)
        return
    assert b.max_queries is None or (type(b.max_queries) is int and b.max_queries >= 0)
    assert b.max_calls is None or (type(b.max_calls) is int and b.max_calls >= 0)
    assert b.phases is None or (b.phases and all(isinstance(p, str) and p for p in b.phases))


@FUZZ
@given(limit=st.integers(0, 50), n=scalars, phase=st.one_of(st.none(), st.text(max_size=8),
                                                            st.sampled_from(["train", "validation", "test"])))
def test_reserving_queries_is_a_reservation_or_a_clear_refusal(limit, n, phase):
    COVERED["reserve"] += 1
    led = Ledger(Budget(max_queries=limit, phases=("train", "validation")))
    try:
        r = led.reserve_queries(n, phase=phase)
    except (ValueError, BudgetExhausted) as e:
        _has_message(e)
        assert led.total().reserved == 0
        return
    assert isinstance(r.n, int) and 0 <= r.n and (r.phase not in ("train", "validation") or r.n <= limit)


@FUZZ
@given(arg=st.one_of(scalars, st.lists(scalars, max_size=3)))
def test_a_ledger_of_anything_but_budgets_is_a_type_error(arg):
    COVERED["ledger"] += 1
    try:
        Ledger(arg)
    except TypeError as e:
        _has_message(e)
        assert "Budget" in str(e)
    else:
        assert arg is None or arg == []


# ------------------------------------------------------------------ exposures
exposure_like = st.one_of(
    st.text(max_size=12),
    st.from_regex(r"\A(top|topk|top-k|rounded|round|label|probs|logits)[-:=_]?-?[0-9]{0,4}\Z"),
    scalars)


@FUZZ
@given(spec=exposure_like)
def test_exposure_specs_parse_or_are_refused_naming_the_spec(spec):
    COVERED["exposure"] += 1
    try:
        e = parse_exposure(spec)
    except ValueError as err:
        assert repr(spec) in str(err) and "top<k>" in str(err)
        return
    assert isinstance(e, Exposure) and (spec is None or isinstance(spec, str))
    assert parse_exposure(e.key()).key() == e.key()


# ------------------------------------------------------------------ splits
DATA = from_arrays(np.zeros((30, 4, 4), np.uint8), np.arange(30) % 3, name="fuzz")


@FUZZ
@given(text=st.one_of(st.text(max_size=16),
                      st.lists(st.one_of(st.integers(-3, 40).map(str), st.floats(-1, 2).map(repr),
                                         st.sampled_from(["nan", "inf", "", "0.2", "1e3"])),
                               min_size=1, max_size=4).map(",".join)))
def test_split_option_and_split_dataset(text):
    COVERED["split"] += 1
    try:
        sizes = _values.split(text)
    except argparse.ArgumentTypeError as e:
        _has_message(e)
        return
    try:
        parts = split_dataset(DATA, sizes, seed=0)
    except ValueError as e:
        _has_message(e)
        return
    assert sum(len(p) for p in parts) <= len(DATA) and all(len(p) >= 1 for p in parts)


@FUZZ
@given(val=scalars, test=scalars, train=scalars, seed=st.integers(0, 3))
def test_split_configs_are_built_or_refused(val, test, train, seed):
    COVERED["split_config"] += 1
    try:
        cfg = SplitConfig(val=val, test=test, train=train, seed=seed)
        n = cfg.sizes(len(DATA))
    except ValueError as e:
        _has_message(e)
        return
    assert sum(n) <= len(DATA) and n[0] >= 1


# ------------------------------------------------------------------ --param values into the optimizers
param_items = st.lists(st.tuples(st.sampled_from(["q", "alpha", "a", "A", "c", "gamma", "beta", "lr", "mu",
                                                  "coords", "block", "estimator", "popsize", "sigma", "sigma0",
                                                  "diagonal", "perturbation", "blocking", "max_step", "preset",
                                                  "first_step", "eps", "unknown", ""]),
                                  st.one_of(st.text(max_size=8), json_values.map(json.dumps),
                                            st.sampled_from(["nan", "NaN", "Infinity", "-1", "0", "true", "[0]",
                                                             "[0.5, 1]", "1e999", "null", "cge", "blackvip"]))),
                       max_size=3)


@FUZZ
@given(name=st.sampled_from(sorted(REGISTRY)), items=param_items,
       seed=st.one_of(st.integers(-2, 2**64), st.floats(-1, 3), st.none(), st.booleans(), st.text(max_size=3)))
def test_param_values_build_an_optimizer_or_a_config_error(name, items, seed):
    COVERED["param"] += 1
    try:
        params = parse_params([f"{k}={v}" for k, v in items], "optimizer")
    except ValueError as e:
        _has_message(e)
        return
    try:
        opt = make(name, 5, seed=seed, **params)
    except ConfigError as e:
        _has_message(e)
        return
    if isinstance(opt, InputGradientOptimizer):  # learns from gradients the Reprogrammer assembles, not ask/tell
        opt.apply_gradient(2 * opt.recommend() + 1.0)
        assert np.all(np.isfinite(opt.recommend()))
    else:
        cands = opt.ask()
        opt.tell(cands, [float(c @ c) for c in cands])
    opt.close()


# ------------------------------------------------------------------ every command-line value checker
CHECKERS = {name: getattr(_values, name) for name in ("positive_int", "non_negative_int", "seed", "port",
                                                      "positive_float", "non_negative_float", "probability",
                                                      "host", "exposure", "sizes", "split")}


@FUZZ
@given(name=st.sampled_from(sorted(CHECKERS)),
       text=st.one_of(st.text(max_size=20), st.integers(-2**70, 2**70).map(str), st.floats().map(repr),
                      st.sampled_from(["70000", "-1", "999.1.1.1", "::1", "localhost", "top20", "rounded-1",
                                       "0x10", "1_000", " 5 ", "٣"])))
def test_cli_value_checkers_return_a_value_or_an_argument_error(name, text):
    COVERED["cli_value"] += 1
    try:
        value = CHECKERS[name](text)
    except argparse.ArgumentTypeError as e:
        _has_message(e)
        return
    if name == "port":
        assert 0 <= value <= 65535
    if name in ("positive_float", "non_negative_float", "probability"):
        assert math.isfinite(value)


# ------------------------------------------------------------------ the server's wire bodies
httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")
pytest.importorskip("starlette")


@pytest.fixture(scope="module")
def servers():
    from oracles.server import OracleServer, ServerConfig
    from oracles.text_models import chatterbot_topics

    with OracleServer("fmnist-cnn", ServerConfig(exposure="top3", max_batch=16, require_key=False)) as image, \
            OracleServer(chatterbot_topics(), ServerConfig(model_name="topics", max_batch=8, require_key=False)) as text, \
            httpx.Client(timeout=30) as client:
        yield {"image": image, "text": text, "client": client}


def _check_answer(r) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:300])
    body = r.json()  # every answer is JSON, refusals included
    if r.status_code >= 400:
        assert body["error"]["message"].strip()


def _b64_body(draw_dtype, shape, nbytes):
    return {"inputs": {"dtype": draw_dtype, "shape": shape, "b64": base64.b64encode(b"\0" * nbytes).decode()}}


predict_bodies = st.one_of(
    json_values,
    st.builds(lambda v: {"inputs": v}, json_values),
    st.builds(lambda shape, fill: {"inputs": np.full(shape, fill).tolist()},
              st.lists(st.integers(0, 4), min_size=0, max_size=4).map(tuple),
              st.one_of(st.floats(-2, 2), st.integers(-3, 300))),
    st.builds(lambda v: {"inputs": [[[[v] * 28] * 28]]}, st.one_of(st.floats(allow_nan=False),
                                                                   st.integers(-2**80, 2**80), st.text(max_size=3))),
    st.builds(_b64_body, st.one_of(st.sampled_from(["float32", "float64", "int64", "int32", "float16"]), json_values),
              st.one_of(st.lists(st.integers(-2, 30), max_size=4), json_values), st.integers(0, 4 * 28 * 28 * 2)),
)


@settings(derandomize=True, database=None, deadline=None, max_examples=250,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(body=predict_bodies)
def test_predict_bodies_are_answered_or_refused_never_a_500(servers, body):
    COVERED["wire_predict"] += 1
    r = servers["client"].post(servers["image"].url + "/v1/predict", content=json.dumps(body).encode(),
                               headers={"content-type": "application/json"})
    _check_answer(r)


@settings(derandomize=True, database=None, deadline=None, max_examples=100,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=64), shape=st.one_of(st.none(), st.text(st.characters(min_codepoint=32,
                                                                                     max_codepoint=255), max_size=12),
                                                   st.lists(st.integers(-2, 30), max_size=4).map(
                                                       lambda s: ",".join(map(str, s)))),
       dtype=st.one_of(st.none(), st.sampled_from(["float32", "float64", "int64", "int32", "uint8", "bogus"])))
def test_binary_predict_bodies_are_answered_or_refused(servers, raw, shape, dtype):
    COVERED["wire_binary"] += 1
    headers = {"content-type": "application/octet-stream"}
    if shape is not None:
        headers["x-array-shape"] = shape
    if dtype is not None:
        headers["x-array-dtype"] = dtype
    r = servers["client"].post(servers["image"].url + "/v1/predict", content=raw,
                               headers={k: v.encode("latin-1") for k, v in headers.items()})
    _check_answer(r)


completion_fields = st.fixed_dictionaries({}, optional={
    "prompt": st.one_of(st.text(max_size=20), st.lists(st.text(max_size=10), max_size=3), json_values),
    "logprobs": st.one_of(scalars.filter(lambda v: not isinstance(v, (np.generic,))), json_values),
    "n": json_values, "echo": json_values, "model": st.one_of(st.just("topics"), json_values),
    "logit_bias": st.one_of(st.dictionaries(st.text(max_size=3), json_values, max_size=3), json_values)})
chat_fields = st.fixed_dictionaries({}, optional={
    "messages": st.one_of(json_values, st.lists(st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "system", "x"])},
        optional={"content": st.one_of(st.text(max_size=12), json_values,
                                       st.lists(st.dictionaries(st.sampled_from(["type", "text"]),
                                                                st.one_of(st.just("text"), json_values)),
                                                max_size=2))}), max_size=3)),
    "top_logprobs": json_values, "logprobs": json_values, "n": json_values,
    "model": st.one_of(st.just("topics"), json_values),
    "logit_bias": st.one_of(st.dictionaries(st.text(max_size=3), json_values, max_size=3), json_values)})


def _json_bytes(v) -> bytes:
    """The body as Python's json writes it (NaN and Infinity included: the server's parser reads them)."""
    return json.dumps(v, default=lambda o: o.item() if isinstance(o, np.generic) else str(o)).encode()


@settings(derandomize=True, database=None, deadline=None, max_examples=200,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(body=st.one_of(completion_fields, json_values))
def test_completion_bodies_are_answered_or_refused_never_a_500(servers, body):
    COVERED["wire_completions"] += 1
    r = servers["client"].post(servers["text"].url + "/v1/completions", content=_json_bytes(body),
                               headers={"content-type": "application/json"})
    _check_answer(r)


@settings(derandomize=True, database=None, deadline=None, max_examples=200,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(body=st.one_of(chat_fields, json_values))
def test_chat_bodies_are_answered_or_refused_never_a_500(servers, body):
    COVERED["wire_chat"] += 1
    r = servers["client"].post(servers["text"].url + "/v1/chat/completions", content=_json_bytes(body),
                               headers={"content-type": "application/json"})
    _check_answer(r)


def test_the_fuzzing_covered_every_parser():
    """Runs last in this file: each part above tried its inputs (skipped when run alone with -k)."""
    if not COVERED:
        pytest.skip("run with the rest of the file")
    print("\nfuzz inputs per part:", dict(COVERED), "total", sum(COVERED.values()))
    assert set(COVERED) >= {"budget", "reserve", "ledger", "exposure", "split", "split_config", "param",
                            "cli_value", "wire_predict", "wire_binary", "wire_completions", "wire_chat"}
    assert all(n >= 50 for n in COVERED.values()), COVERED
