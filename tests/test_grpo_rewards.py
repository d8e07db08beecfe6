"""GRPO's verifiable rewards (core/train/rewards.py): the `task` component is eval-mir's per-item
score of the task's kind, `format` says the answer reads; an unreadable answer gets the lowest
reward; weights, shapes and bad options."""

from __future__ import annotations

import math

import mir_eval
import numpy as np
import pytest

from mllm.core.evaluation.tasks import TaskError
from mllm.core.parse.labels import LabelSet
from mllm.core.train.rewards import (Reward, RewardSettings, format_reward, parse_components, task_reward)


def rewards(record, completions, text="task", **kwargs):
    reward = Reward.parse(text, **kwargs)
    prepared = reward.prepare(record)
    return [reward(prepared, completion) for completion in completions]


def test_key_reward_is_the_mirex_weighted_score():
    record = {"id": "1", "task": "key", "answer": {"key": "A minor"}}
    completions = ["The key is A minor.", "E minor", "C major", "A major", "I cannot tell."]
    values = [total for total, _ in rewards(record, completions)]
    assert values == pytest.approx([1.0, 0.5, 0.3, 0.2, 0.0])
    assert values[1] == pytest.approx(mir_eval.key.weighted_score("A minor", "E minor"))


def test_tempo_reward_grades_acc1_over_acc2_over_a_miss():
    record = {"id": "1", "task": "tempo", "answer": {"tempo_bpm": 120.0}}
    values = [total for total, _ in rewards(record, ["121 BPM", "about 240 bpm", "150 BPM", "fast"])]
    assert values == [1.0, 0.5, 0.0, 0.0]


def test_regression_reward_shapes_on_the_declared_scale():
    record = {"id": "1", "task": "arousal", "answer": {"arousal": 5.0}, "scale": [1, 9]}
    linear = [total for total, _ in rewards(record, ["I'd rate it 6", "5", "9", "calm"])]
    assert linear == pytest.approx([1 - 1 / 8, 1.0, 1 - 4 / 8, 0.0])
    gaussian = [total for total, _ in rewards(record, ["I'd rate it 6", "5", "calm"],
                                              settings=RewardSettings(regression_shape="gaussian"))]
    assert gaussian == pytest.approx([math.exp(-(1 / 8) ** 2 / (2 * 0.1 ** 2)), 1.0, 0.0])
    with pytest.raises(ValueError, match="regression-shape"):
        RewardSettings(regression_shape="cubic")


def test_label_beat_and_chord_rewards():
    genres = {"genre": LabelSet.of(["rock", "jazz", "metal"])}
    values = [t for t, _ in rewards({"id": "1", "task": "genre", "answer": "jazz"}, ["Jazz.", "rock", "rock or jazz"],
                                    label_sets=genres)]
    assert values == [1.0, 0.0, 0.0]  # two labels named: no answer
    tags = {"instruments": LabelSet.of(["piano", "drums", "voice"])}
    (total, _), = rewards({"id": "1", "task": "instruments", "answer": ["piano", "drums"]}, ["piano and voice"],
                          label_sets=tags)
    assert total == pytest.approx(0.5)  # precision 1/2, recall 1/2
    beats = np.arange(0.5, 6, 0.5)
    (total, _), = rewards({"id": "1", "task": "beats", "answer": beats.tolist()},
                          [", ".join(f"{t:.2f}" for t in beats[::2])])
    assert total == pytest.approx(mir_eval.beat.f_measure(beats, beats[::2]))
    chords = [[0.0, 2.0, "C:maj"], [2.0, 4.0, "A:min"]]
    (total, _), = rewards({"id": "1", "task": "chords", "answer": chords}, ["0.0s-2.0s: C, 2.0s-4.0s: C"])
    assert total == pytest.approx(0.5)  # majmin right for the first half


def test_components_alone_weights_and_the_lowest_reward_for_unread_answers():
    record = {"id": "1", "task": "key", "answer": "D major"}
    reward = Reward.parse("task:1.0,format:0.2")
    prepared = reward.prepare(record)
    right, wrong, unread = (reward.judge(prepared, text) for text in ("D major", "D minor", "no idea"))
    settings = RewardSettings()
    assert (task_reward(right, settings), format_reward(right, settings)) == (1.0, 1.0)
    assert (task_reward(wrong, settings), format_reward(wrong, settings)) == (pytest.approx(0.2), 1.0)
    assert (task_reward(unread, settings), format_reward(unread, settings)) == (0.0, 0.0)
    total, parts = reward(prepared, "D minor")  # the parallel key
    assert parts == {"task": pytest.approx(0.2), "format": 1.0} and total == pytest.approx(0.2 + 0.2)
    assert reward(prepared, "no idea")[0] == 0.0  # below every readable answer


def test_bad_reward_options_and_records_are_refused_by_name():
    assert parse_components("task") == {"task": 1.0}
    assert parse_components("task:1, format:0.25") == {"task": 1.0, "format": 0.25}
    for text, message in (("style:1", "unknown component 'style'"), ("task:abc", "must be a number"),
                          ("task:nan", "finite"), ("", "names no component")):
        with pytest.raises(ValueError, match=message):
            parse_components(text)
    reward = Reward.parse("task")
    with pytest.raises(TaskError, match="no 'reference'"):
        reward.prepare({"id": "1", "task": "key"})
    with pytest.raises(TaskError, match="outside the scale"):
        reward.prepare({"id": "1", "task": "arousal", "answer": {"arousal": 12}, "scale": [1, 9]})
    with pytest.raises(TaskError, match="no label set"):
        reward.prepare({"id": "1", "task": "genre", "answer": "rock"})
