"""The canvas bookkeeping every family shares (core/generation.py): the two ways of reading a prompt, the
buffer check, the initial canvas, and the SampleOutput convention."""

from __future__ import annotations

import pytest

from insertgen.core.errors import InsertgenError
from insertgen.core.generation import Requests, output_positions, split_output
from insertgen.core.vocab import Vocab

V = Vocab([str(i) for i in range(6)])
D = V.num_special  # the id of data token "0"


def test_a_prompt_is_context_or_the_targets_start():
    prompts = [[D, D + 1], []]
    before = Requests.of(prompts, V, 10)
    assert before.context == prompts and before.start == [[], []] and before.cap == [6, 8]
    inside = Requests.of(prompts, V, 10, prompt_in_target=True)
    assert inside.context == [[], []] and inside.start == prompts and inside.cap == [8, 8]
    tokens, fixed = before.canvas(7)
    assert tokens[0].tolist() == [D, D + 1, V.bos_id, V.eos_id, V.pad_id, V.pad_id, V.pad_id]
    assert fixed[0].tolist() == [True, True, True, False, False, False, False]
    tokens, fixed = inside.canvas(7)
    assert tokens[0].tolist() == [V.bos_id, D, D + 1, V.eos_id, V.pad_id, V.pad_id, V.pad_id]
    assert fixed[0].tolist() == [True, True, True, False, False, False, False]
    assert tokens[1].tolist()[:2] == [V.bos_id, V.eos_id] and fixed[1].tolist()[:2] == [True, False]


@pytest.mark.parametrize("prompt_in_target", [False, True])
def test_a_prompt_that_leaves_no_room_for_bos_and_eos_is_refused(prompt_in_target):
    assert Requests.of([[D] * 8], V, 10, prompt_in_target).cap[0] in (0, 8)  # exactly full: accepted
    with pytest.raises(InsertgenError, match="a prompt of 9 tokens does not fit the model's buffer of 10 tokens"):
        Requests.of([[D], [D] * 9], V, 10, prompt_in_target)
    with pytest.raises(InsertgenError, match="does not fit a canvas of 4 tokens"):
        Requests.of([[D] * 3], V, 10, prompt_in_target).canvas(4)


def test_the_result_frames_the_targets_and_their_steps():
    requests = Requests.of([[D + 5], []], V, 10)
    targets = [[D, D + 1], [D + 2]]
    assert requests.result(targets, False, model_evals=[2, 1], forward_calls=2) == targets
    outputs, record = requests.result(targets, True, insert_step=[[1, 0], [0]], model_evals=[2, 1],
                                      forward_calls=2, terminated=[True, False])
    assert outputs == targets
    assert record.tokens == [[D + 5, V.bos_id, D, D + 1, V.eos_id], [V.bos_id, D + 2, V.eos_id]]
    assert record.insert_step == [[-1, -1, 1, 0, -1], [-1, 0, -1]] == record.unmask_step
    assert record.model_evals == [2, 1] and record.forward_calls == 2 and record.terminated == [True, False]
    _, record = requests.result(targets, True, unmask_step=[[3, 4], [5]], model_evals=[5, 5], forward_calls=5)
    assert record.insert_step == [[-1] * 5, [-1] * 3] and record.unmask_step == [[-1, -1, 3, 4, -1], [-1, 5, -1]]
    with pytest.raises(ValueError, match="2 target tokens with 1 insertion"):
        requests.result(targets, True, insert_step=[[0], [0]], model_evals=[1, 1], forward_calls=1)
    # the outputs read back off the record's canvases are the targets
    assert requests.outputs(record.tokens) == targets


def test_outputs_are_read_between_the_first_bos_and_the_next_eos_skipping_special_tokens():
    row = [D + 3, V.bos_id, D, V.mask_id, D + 1, V.pad_id, V.eos_id, D + 2]
    assert output_positions(row, V) == [2, 4] and split_output(row, V) == [D, D + 1]
    assert split_output([D, D + 1], V) == [D, D + 1]  # no BOS: from the start
