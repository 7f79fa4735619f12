"""Exposure policies on top of any oracle, worked by hand; mismatches refused at construction."""

from __future__ import annotations

import numpy as np
import pytest

from blackbox_rp import (ExposureError, InputSpec, LabelOnly, Logits, Oracle, Probs, Response, Rounded, TopK,
                         parse_exposure)
from blackbox_rp.exposure import require

LOGITS = np.array([[0.0, np.log(3.0), np.log(6.0)],   # softmax = [0.1, 0.3, 0.6]
                   [np.log(5.0), np.log(4.0), 0.0]], dtype=np.float32)  # softmax = [0.5, 0.4, 0.1]


def test_each_exposure_by_hand():
    r = Response.from_logits(LOGITS)
    np.testing.assert_allclose(Probs().apply(r).scores, [[0.1, 0.3, 0.6], [0.5, 0.4, 0.1]], rtol=1e-6)
    assert Logits().apply(r) is r
    t = TopK(2).apply(r)
    assert t.kind == "topk"
    assert t.indices.tolist() == [[2, 1], [0, 1]]
    np.testing.assert_allclose(t.scores, [[0.6, 0.3], [0.5, 0.4]], rtol=1e-6)
    np.testing.assert_allclose(t.probs(), [[0, 0.3, 0.6], [0.5, 0.4, 0]], rtol=1e-6)
    np.testing.assert_allclose(t.probs(floor=0.01), [[0.01, 0.3, 0.6], [0.5, 0.4, 0.01]], rtol=1e-6)
    lab = LabelOnly().apply(r)
    assert lab.kind == "label" and lab.labels.tolist() == [2, 0] and lab.scores is None
    np.testing.assert_array_equal(lab.probs(), [[0, 0, 1], [1, 0, 0]])
    rounded = Rounded(0).apply(Response.from_probs(np.array([[0.45, 0.55], [0.51, 0.49]], np.float32)))
    np.testing.assert_array_equal(rounded.scores, [[0, 1], [1, 0]])
    assert rounded.labels.tolist() == [1, 0]


def test_topk_of_topk_and_too_large_k():
    t3 = TopK(3).apply(Response.from_logits(LOGITS))
    assert TopK(1).apply(t3).indices.tolist() == [[2], [0]]
    with pytest.raises(ExposureError, match="top-3"):
        TopK(5).apply(t3)


class TopKSource(Oracle):
    """A backend that only ever returns top-2 (like many APIs)."""

    source_level = "topk"

    def __init__(self, **kw):
        super().__init__(InputSpec.vectors(3), 3, **kw)

    @property
    def identity(self):
        return "top2-api"

    def _answer(self, x, call):
        call.attempt()
        return TopK(2).apply(Response.from_logits(x))


def test_an_oracle_cannot_expose_more_than_it_returns():
    with pytest.raises(ExposureError, match="only returns 'topk'"):
        TopKSource(exposure="probs")
    o = TopKSource(exposure="top1")
    assert o(LOGITS).indices.tolist() == [[2], [0]]
    assert o.with_exposure("label")(LOGITS).kind == "label"
    with pytest.raises(ExposureError):
        o.with_exposure(Logits())


def test_consumers_needing_more_are_refused_with_the_usable_choices():
    require("label", TopK(3), "FLM")
    require("topk", Probs(), "BLM+")
    with pytest.raises(ExposureError, match=r"BLM\+ needs 'topk'.*gives only 'label'"):
        require("topk", LabelOnly(), "BLM+")
    with pytest.raises(ExposureError, match="linear probe needs 'probs'"):
        TopKSource(exposure="top2").require("probs", "linear probe")


@pytest.mark.parametrize("spec,want", [("probs", Probs()), ("top5", TopK(5)), ("topk:3", TopK(3)),
                                       ("label", LabelOnly()), ("rounded2", Rounded(2)), ("logits", Logits())])
def test_parse_exposure(spec, want):
    assert parse_exposure(spec) == want


@pytest.mark.parametrize("bad", ["top", "topzero", "everything", "rounded99"])
def test_bad_exposure_names_say_what_is_accepted(bad):
    with pytest.raises(ValueError, match="probs, logits, label|Rounded.decimals"):
        parse_exposure(bad)


def test_response_shapes_are_checked():
    with pytest.raises(ValueError, match="scores of shape"):
        Response("probs", 3, np.zeros(2, np.int64), np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="unknown response kind"):
        Response("everything", 3, np.zeros(2, np.int64))
