"""The discrete text prompt (transforms/text_prompt.py) and its candidate words (transforms/prompt_vocab.py)."""

from __future__ import annotations

import numpy as np
import pytest

from blackbox_rp.oracle import InputSpec
from blackbox_rp.space import SearchSpace
from blackbox_rp.textdata import TextDataset
from blackbox_rp.transforms import TRANSFORMS, InputTransform
from blackbox_rp.transforms.prompt_vocab import PromptVocabularyError, candidates_from_texts, words
from blackbox_rp.transforms.text_prompt import DiscretePrompt, DiscretePromptConfig, PromptError

TRAIN = TextDataset(("a great film , truly great", "great acting and a fine cast", "fine , great fun",
                     "a dull film", "dull and slow , so dull", "slow and boring plot"),
                    np.array([1, 1, 1, 0, 0, 0]), ("negative", "positive"), "toy")


def make(**kw) -> DiscretePrompt:
    return DiscretePrompt(DiscretePromptConfig(**kw))


def test_registered_as_a_text_transform_with_a_categorical_space():
    cls = TRANSFORMS.lookup("discrete")
    assert issubclass(cls, InputTransform) and cls.modality == "text"
    t = make(template="Review: {x} Sentiment:", slots=3, candidates=("good", "bad"), init=("", "movie", ""))
    assert t.space == SearchSpace.categorical((3, 3, 3), labels=(("", "good", "bad"), ("movie", "good", "bad"),
                                                                  ("", "good", "bad")))
    assert t.space.kind == "categorical"
    assert t.init_theta().tolist() == [0, 0, 0]


def test_theta0_is_the_hand_written_prompt_and_readable_is_the_prompt_string():
    t = make(template="Review: {x}\nSentiment:", slots=2, candidates=("great", "awful"), init=("a", "movie"))
    assert t.readable(t.init_theta()) == "Review: a movie {x}\nSentiment:"
    assert t.apply(t.init_theta(), ["fine."]) == ["Review: a movie fine.\nSentiment:"]
    assert t.describe()["init_prompt"] == "Review: a movie {x}\nSentiment:"
    assert t.describe()["options"] == [["a", "great", "awful"], ["movie", "great", "awful"]]
    # the readable prompt is reusable with any client: replace {x}
    theta = np.array([2.0, 1.0])
    assert t.readable(theta).replace("{x}", "fine.") == t.apply(theta, ["fine."])[0]


@pytest.mark.parametrize("position, expected", [
    ("before", "Q: w1 w2 w3 text A:"),
    ("after", "Q: text w1 w2 w3 A:"),
    ("around", "Q: w1 w2 text w3 A:"),
])
def test_slots_go_before_after_or_around_the_input(position, expected):
    t = make(template="Q: {x} A:", slots=3, position=position, slot_candidates=(("w1",), ("w2",), ("w3",)))
    assert t.apply(np.array([1, 1, 1]), ["text"]) == [expected]
    assert t.apply(np.zeros(3), ["text"]) == ["Q: text A:"], "empty slots add nothing, not double spaces"


def test_markers_place_each_slot_and_set_the_slot_count():
    t = make(template="{p1} review: {x} it was {p0}.", candidates=("really", "so"))
    assert t.config.slots == 2
    assert t.apply(np.array([1.0, 2.0]), ["ok"]) == ["so review: ok it was really."]
    assert t.apply(np.zeros(2), ["ok"]) == ["review: ok it was."], "an empty marker leaves no stray space"


def test_empty_markers_at_the_end_leave_the_hand_prompt_exactly():
    # slots appended after the answer cue: θ₀ must be the hand prompt itself, no trailing space (a prompt that
    # ends in a space asks the model for a token without its leading space)
    t = make(template="Review: {x}\nSentiment: {p0} {p1}", candidates=("it", "was"))
    assert t.readable(t.init_theta()) == "Review: {x}\nSentiment:"
    assert t.readable(np.array([1.0, 2.0])) == "Review: {x}\nSentiment: it was"
    assert t.readable(np.array([0.0, 2.0])) == "Review: {x}\nSentiment: was"
    t = make(template="Review: {x}\n{p0} {p1} {p2}", candidates=("it", "was"), init=("", "", "Sentiment:"))
    assert t.readable(t.init_theta()) == "Review: {x}\nSentiment:"
    assert t.readable(np.array([1.0, 0.0, 2.0])) == "Review: {x}\nit was"


def test_template_without_the_input_placeholder_is_refused_clearly():
    with pytest.raises(PromptError, match=r"must contain the input placeholder \{x\} exactly once"):
        make(template="Review: Sentiment:", slots=1, candidates=("a",))
    with pytest.raises(PromptError, match="exactly once"):
        make(template="{x} and {x}", slots=1, candidates=("a",))
    with pytest.raises(PromptError, match=r"\{p0\} … \{p1\}"):
        make(template="{p0} {x} {p2}", candidates=("a",))


def test_unknown_slot_vocabulary_and_bad_candidates_are_refused():
    with pytest.raises(PromptError, match="unknown slot vocabulary 'tfidf'.*'freq', 'pmi'|unknown slot vocabulary 'tfidf'"):
        make(template="{x}", slots=2, candidates="tfidf")
    with pytest.raises(PromptError, match="candidate list is empty"):
        make(template="{x}", slots=2, candidates=("", " "))
    with pytest.raises(PromptError, match="init has 1 words for 2 slots"):
        make(template="{x}", slots=2, candidates=("a",), init=("x",))
    with pytest.raises(PromptError, match="nothing to choose from"):
        make(template="{x}", slots=1, candidates=("a",), init=("a",))
    with pytest.raises(PromptError, match="build the prompt with DiscretePrompt.for_task"):
        make(template="{x}", slots=1, candidates="pmi")
    with pytest.raises(PromptError, match="does not accept"):
        DiscretePrompt.for_task(TRAIN, InputSpec.text(), slots=1, candidate="pmi")
    with pytest.raises(PromptError, match="takes 'image' inputs"):
        DiscretePrompt.for_task(TRAIN, InputSpec(), slots=1)


def test_empty_texts_and_theta_outside_the_space_get_clear_errors():
    t = make(template="{x}", slots=1, candidates=("a", "b"))
    with pytest.raises(PromptError, match="input 1 is empty"):
        t.apply(np.zeros(1), ["fine", "  "])
    with pytest.raises(PromptError, match="got one string"):
        t.apply(np.zeros(1), "fine")
    with pytest.raises(PromptError, match="not a prompt of this transform.*slot 0 takes an option index in 0..2"):
        t.apply(np.array([3.0]), ["fine"])
    with pytest.raises(PromptVocabularyError, match="empty"):
        candidates_from_texts(["good", ""], [0, 1])
    with pytest.raises(PromptVocabularyError, match="zero training texts"):
        candidates_from_texts([], [])


def test_for_task_ranks_candidates_from_the_training_texts():
    t = DiscretePrompt.for_task(TRAIN, InputSpec.text(), slots=2, candidates="freq", num_candidates=4)
    # freq, classes interleaved: class 0's best (dull: 2 texts, ties by word), class 1's (great: 3), ...
    assert t.options[0] == ("", "and", "great", "dull", "a")
    pmi = candidates_from_texts(TRAIN.x, TRAIN.y, size=4, method="pmi", min_count=2)
    # by hand (6 texts, 3 per class, words in >= 2 texts): class 0 dull, slow: log((2/3)/(2/6)) = log 2,
    # and: log((2/3)/(3/6)); class 1 great: log((3/3)/(3/6)) = log 2 (3 texts), fine: log 2 (2 texts)
    assert pmi == ("dull", "great", "slow", "fine")
    bigrams = candidates_from_texts(TRAIN.x, TRAIN.y, size=50, method="freq", max_n=2)
    assert "so dull" in bigrams and "great" in bigrams
    assert words("It's GREAT, 10/10!") == ["it's", "great", "10", "10"]
