"""Label mappings over next-token answers (mapping/tokens.py): a hand-worked example for each."""

from __future__ import annotations

import numpy as np
import pytest

from blackbox_rp.exposure import ExposureError, Response
from blackbox_rp.mapping import make_mapping
from blackbox_rp.mapping.linear import LinearMapping
from blackbox_rp.mapping.tokens import TokenMappingError, shown_tokens, token_mapping_params
from blackbox_rp.vocab import ListVocabulary

V = ListVocabulary(["<unk>", " good", " bad", " the", " a", " great", " awful"])


def topk(ids, p, n=V.size) -> Response:
    ids, p = np.asarray(ids, np.int64), np.asarray(p, np.float32)
    return Response("topk", n, ids[:, 0].copy(), p, ids)


def verbalizer(**kw):
    return make_mapping("verbalizer", V.size, 2, vocabulary=V, **kw)


# ------------------------------------------------------------------- verbalizer
def test_verbalizer_missing_floor_is_the_largest_probability_a_missing_token_could_have():
    m = verbalizer(words=("bad", "good"), missing="floor")
    # row 0: " bad" unshown → min(smallest shown 0.3, unshown mass 1 − 0.8 = 0.2) = 0.2 → [0.2, 0.3] / 0.5
    # row 1: neither shown → both min(0.35, 0.05) = 0.05 → [0.5, 0.5]
    r = topk([[3, 1], [3, 4]], [[0.5, 0.3], [0.6, 0.35]])
    assert np.allclose(m.scores(r), [[0.4, 0.6], [0.5, 0.5]])
    assert m.predict(r).tolist() == [1, 0]


def test_verbalizer_missing_zero_gives_unshown_words_nothing():
    m = verbalizer(words=("bad", "good"), missing="zero")
    r = topk([[3, 1], [3, 4]], [[0.5, 0.3], [0.6, 0.35]])
    # row 0: [0, 0.3] → [0, 1]; row 1: nothing → a uniform row
    assert np.allclose(m.scores(r), [[0.0, 1.0], [0.5, 0.5]])


def test_verbalizer_sums_several_words_per_class_and_reads_full_answers_exactly():
    m = verbalizer(words=("bad|awful", "good|great"))
    # bad 0.3 + awful floor min(0.1, 1 − 0.8) = 0.1 → 0.4; good 0.1 + great 0.4 = 0.5
    r = topk([[5, 2, 1]], [[0.4, 0.3, 0.1]])
    assert np.allclose(m.scores(r), [[0.4 / 0.9, 0.5 / 0.9]])
    assert m.describe()["label_tokens"] == [[" bad", " awful"], [" good", " great"]]
    p = np.array([[0.0, 0.1, 0.2, 0.3, 0.1, 0.2, 0.1]], np.float32)
    assert np.allclose(m.scores(Response.from_probs(p)), [[0.3 / 0.6, 0.3 / 0.6]])
    logits = np.log(p + 1e-9)
    assert np.allclose(m.scores(Response.from_logits(logits)), [[0.5, 0.5]], atol=1e-6)


def test_verbalizer_refuses_words_it_cannot_read_as_one_token():
    with pytest.raises(TokenMappingError, match=r"label word ' good good' \(class 1\) is 2 tokens"):
        verbalizer(words=("bad", "good good"))
    with pytest.raises(TokenMappingError, match="not in the vocabulary"):
        verbalizer(words=("bad", "zebra"))
    with pytest.raises(TokenMappingError, match="one label word per class \\(2\\), got 1"):
        verbalizer(words=("bad",))
    with pytest.raises(TokenMappingError, match="share a label token"):
        verbalizer(words=("bad", "good|bad"))
    with pytest.raises(TokenMappingError, match="vocabulary=oracle.vocabulary"):
        make_mapping("verbalizer", V.size, 2, words=("bad", "good"))
    with pytest.raises(TokenMappingError, match="missing must be one of"):
        verbalizer(words=("bad", "good"), missing="drop")
    assert verbalizer(token_ids=((2,), (1, 5))).class_ids == ((2,), (1, 5))


def test_token_mappings_declare_needs_checked_against_the_exposure():
    with pytest.raises(ExposureError, match="'verbalizer' needs 'topk'"):
        verbalizer(words=("bad", "good"), exposure="label")
    with pytest.raises(ExposureError, match="'token-blm\\+' needs 'topk'"):
        make_mapping("token-blm+", V.size, 2, exposure="label")
    with pytest.raises(ExposureError, match="'token-linear' needs 'topk'"):
        make_mapping("token-linear", V.size, 2, exposure="label")
    for name in ("token-flm", "token-blm"):
        assert make_mapping(name, V.size, 2, exposure="label").needs == "label"
    m = verbalizer(words=("bad", "good"))
    with pytest.raises(ExposureError):
        m.scores(Response("label", V.size, np.array([1])))


def test_a_class_score_oracle_is_refused_by_token_mappings():
    from token_lm import topic_classifier

    clf = topic_classifier()  # the trained chatterbot-topics classifier: it answers 8 topic scores
    with pytest.raises(TokenMappingError, match="answers class scores: use a token oracle"):
        token_mapping_params("verbalizer", clf)
    with pytest.raises(TokenMappingError, match="answers class scores"):
        make_mapping("token-blm", clf.num_classes, 2).check(clf)
    assert token_mapping_params("blm+", clf) == {}


# ---------------------------------------------------------------- token FLM
ANSWERS = topk([[1, 3], [1, 2], [2, 1], [3, 2]], [[0.6, 0.3], [0.5, 0.4], [0.7, 0.2], [0.5, 0.4]])
Y = np.array([1, 1, 0, 0])


def test_token_flm_assigns_each_class_its_most_frequent_top1_token():
    m = make_mapping("token-flm", V.size, 2, vocabulary=V).fit(ANSWERS, Y)
    # top-1 counts: " good"(1) → class 1 twice; " bad"(2) and " the"(3) once each for class 0, a tie
    # broken by top-k mass for class 0 (" bad": 0.7 + 0.4, " the": 0.5) → class 0 takes " bad"
    assert m.source_of.tolist() == [2, 1]
    assert m.describe()["label_tokens"] == [" bad", " good"]
    # row [" the" .5, " bad" .4]: class 0 = 0.4, " good" unshown → floor min(0.4, 0.1) = 0.1
    assert np.allclose(m.scores(ANSWERS.take([3])), [[0.8, 0.2]])
    label = Response("label", V.size, np.array([2, 3]))
    assert np.allclose(m.scores(label), [[1, 0], [0.5, 0.5]])


# ---------------------------------------------------------------- token BLM / BLM+
def test_token_blm_weights_over_the_top1_tokens_seen():
    m = make_mapping("token-blm", V.size, 2).fit(ANSWERS, Y)
    # counts: " good" [0, 2], " bad" [1, 0], " the" [1, 0]; rows / (sum + 1): [0, 2/3], [1/2, 0], [1/2, 0];
    # columns normalised: class 0 [0, .5, .5], class 1 [1, 0, 0]
    assert m.ids.tolist() == [1, 2, 3]
    assert np.allclose(m.omega, [[0, 1], [0.5, 0], [0.5, 0]])
    label = Response("label", V.size, np.array([2, 5]))
    assert np.allclose(m.scores(label), [[1, 0], [0.5, 0.5]]), "an unseen token carries no vote: uniform"


def test_token_blm_plus_weights_from_the_top_k_mass():
    m = make_mapping("token-blm+", V.size, 2).fit(ANSWERS, Y)
    mass = np.array([[0.2, 1.1], [1.1, 0.4], [0.5, 0.3]])  # " good", " bad", " the" × class 0, 1
    w = mass / (mass.sum(1, keepdims=True) + 1.0)
    w /= w.sum(0, keepdims=True)
    assert m.ids.tolist() == [1, 2, 3] and np.allclose(m.omega, w, atol=1e-6)
    r = topk([[2, 3, 6]], [[0.5, 0.2, 0.1]])  # " awful" was never seen: it adds nothing
    s = 0.5 * w[1] + 0.2 * w[2]
    assert np.allclose(m.scores(r), [s / s.sum()], atol=1e-6)
    # k=1 counts only each answer's first token, with its probability: " good" [0, 1.1], " bad" [.7, 0], " the" [.5, 0]
    mass1 = np.array([[0.0, 1.1], [0.7, 0.0], [0.5, 0.0]])
    w1 = mass1 / (mass1.sum(1, keepdims=True) + 1.0)
    w1 /= w1.sum(0, keepdims=True)
    assert np.allclose(make_mapping("token-blm+", V.size, 2, k=1).fit(ANSWERS, Y).omega, w1, atol=1e-6)


def test_token_mappings_never_build_a_vocabulary_sized_matrix():
    n_vocab = 262_144
    rng = np.random.default_rng(0)
    ids = np.stack([rng.choice(n_vocab, 20, replace=False) for _ in range(200)])
    p = np.sort(rng.dirichlet(np.ones(21), 200)[:, :20], axis=1)[:, ::-1]
    r = Response("topk", n_vocab, ids[:, 0].copy(), p.astype(np.float32), ids)
    y = rng.integers(0, 3, 200)
    blm = make_mapping("token-blm+", n_vocab, 3).fit(r, y)
    assert blm.omega.shape == (len(np.unique(ids)), 3)
    lin = make_mapping("token-linear", n_vocab, 3, max_features=500, max_iter=10).fit(r, y)
    assert lin.weight.shape == (3, 500) and lin.features(r).shape == (200, 500)
    assert blm.scores(r).shape == lin.scores(r).shape == (200, 3)


# ---------------------------------------------------------------- linear readout
def test_token_linear_features_are_the_shown_log_probs_over_a_compact_index_with_a_floor():
    m = make_mapping("token-linear", V.size, 2).fit(ANSWERS, Y)
    assert m.ids.tolist() == [1, 2, 3], "the token ids seen in training, sorted"
    # row [" good" .6, " the" .3]: " bad" unshown → min(unshown 0.1 / (7 − 2) = 0.02, smallest shown 0.3)
    assert np.allclose(m.features(ANSWERS.take([0])), [[0.6, 0.02, 0.3]])
    # " awful" (6) is not in the index: dropped; the indexed tokens it hides get the floor
    assert np.allclose(m.features(topk([[6, 1]], [[0.9, 0.05]])), [[0.05, 0.01, 0.01]])
    # it is the image readout on those compact features
    ref = LinearMapping(3, 2, l2=m.config.l2).fit(m.features(ANSWERS), Y)
    assert np.allclose(m.scores(ANSWERS), ref.scores(m.features(ANSWERS)))
    assert m.predict(ANSWERS).tolist() == Y.tolist()
    capped = make_mapping("token-linear", V.size, 2, max_features=2).fit(ANSWERS, Y)
    assert capped.ids.tolist() == [1, 2], "the most frequently shown tokens are kept (ties: lowest id)"


@pytest.mark.parametrize("name", ["token-flm", "token-blm", "token-blm+", "token-linear", "verbalizer"])
def test_token_mapping_state_round_trips(name):
    kw = {"words": ("bad", "good"), "vocabulary": V} if name == "verbalizer" else {}
    m = make_mapping(name, V.size, 2, **kw).fit(ANSWERS, Y)
    fresh = make_mapping(name, V.size, 2, **kw)
    fresh.load_state_dict(m.state_dict())
    assert np.array_equal(fresh.scores(ANSWERS), m.scores(ANSWERS))


def test_shown_tokens_reduces_full_answers_without_sorting_the_vocabulary():
    p = np.array([[0.1, 0.5, 0.05, 0.3, 0.05, 0.0, 0.0]], np.float32)
    ids, q = shown_tokens(Response.from_probs(p), k=3)
    assert ids.tolist() == [[1, 3, 0]] and np.allclose(q, [[0.5, 0.3, 0.1]])
    ids, q = shown_tokens(Response.from_logits(np.log(p + 1e-12)), k=2)
    assert ids.tolist() == [[1, 3]] and np.allclose(q, [[0.5, 0.3]], atol=1e-6)
