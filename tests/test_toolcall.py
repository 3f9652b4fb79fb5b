"""The tool-call loop, driven by a scripted fake model so every branch is exercised."""

import json

import pytest

from selfbake.generation import (
    Backend,
    Sample,
    SamplingParams,
    TransformersBackend,
    pick_format,
    run_tool_loop,
)
from selfbake.tools import get_tools


class ScriptedBackend(Backend):
    """Answers each prompt with ``script(prompt)`` and applies stop strings like a real backend."""

    def __init__(self, tokenizer, script):
        self.tokenizer = tokenizer
        self.script = script
        self.prompts: list[str] = []

    def generate(self, prompts, params: SamplingParams):
        samples = []
        for index, prompt in enumerate(prompts):
            self.prompts.append(prompt)
            text = self.script(prompt)
            hits = [(text.find(s), s) for s in params.stop if s in text]
            if hits:
                cut, stop = min(hits)
                samples.append(Sample(index, text[:cut], [1], "stop", stop))
            else:
                samples.append(Sample(index, text, [1, 2], "eos"))
        return samples


def calculator_script(prompt: str) -> str:
    if "<|im_start|>tool\n408" in prompt:
        return "The answer is 408."
    return "Let me compute. <call>calculator: 12*34</call> ignored tail"


def test_tag_loop_runs_the_tool_and_feeds_back_the_result(llama):
    _, tok = llama
    backend = ScriptedBackend(tok, calculator_script)
    conv = [{"role": "system", "content": "Use the calculator."}, {"role": "user", "content": "12*34?"}]
    [result] = run_tool_loop(backend, [conv], get_tools(["calculator"]), SamplingParams())
    assert result.calls == [{"name": "calculator", "argument": "12*34", "result": "408"}]
    assert result.text == "The answer is 408."
    assert result.finish_reason == "eos"
    assert len(backend.prompts) == 2
    second = backend.prompts[1]
    assert "Let me compute. <call>calculator: 12*34</call><|im_end|>" in second
    assert "<|im_start|>tool\n408<|im_end|>" in second
    assert second.endswith("<|im_start|>assistant\n")
    assert [m["role"] for m in result.messages] == ["assistant", "tool", "assistant"]
    assert "[calculator -> 408]" in result.transcript


def test_progress_counts_each_answer_once_across_tool_rounds(llama):
    _, tok = llama

    def script(prompt: str) -> str:  # the first conversation answers at once, the others call the tool first
        if "12*34?" in prompt or "<|im_start|>tool\n408" in prompt:
            return "The answer is 408."
        return "Let me compute. <call>calculator: 12*34</call>"

    backend = ScriptedBackend(tok, script)
    convs = [[{"role": "user", "content": q}] for q in ("12*34?", "what is 12 times 34?", "12 x 34")]
    done: list[int] = []
    results = run_tool_loop(
        backend, convs, get_tools(["calculator"]), SamplingParams(n=2), on_done=done.append
    )
    assert done == [2, 4]  # round 1: the direct answers (2 samples); round 2: the four after a tool call
    assert len(backend.prompts) == 10 and all(r.text == "The answer is 408." for r in results)


@pytest.mark.parametrize(
    "call, expected",
    [
        ("<call>calculator 12*34</call>", "error: malformed call"),
        ("<call>teleport: mars</call>", "error: unknown tool 'teleport'"),
        ("<call>calculator: 1/0</call>", "error: division by zero"),
        ("<call>calculator: import os</call>", "error: cannot parse"),
    ],
)
def test_bad_calls_become_error_results_the_model_sees(llama, call, expected):
    _, tok = llama

    def script(prompt):
        return "done" if "<|im_start|>tool\nerror" in prompt else call

    backend = ScriptedBackend(tok, script)
    [result] = run_tool_loop(
        backend, [[{"role": "user", "content": "q"}]], get_tools(["calculator"]), SamplingParams()
    )
    assert result.calls[0]["result"].startswith(expected)
    assert f"<|im_start|>tool\n{result.calls[0]['result']}<|im_end|>" in backend.prompts[1]
    assert result.text == "done"


def test_call_cap_ends_with_tool_limit(llama):
    _, tok = llama
    backend = ScriptedBackend(tok, lambda prompt: "<call>calculator: 1+1</call>")
    [result] = run_tool_loop(
        backend,
        [[{"role": "user", "content": "q"}]],
        get_tools(["calculator"]),
        SamplingParams(),
        max_calls=2,
    )
    assert len(result.calls) == 2
    assert result.finish_reason == "tool_limit"
    assert len(backend.prompts) == 3


def test_hermes_format_uses_the_templates_tool_calling(qwen2):
    _, tok = qwen2
    assert pick_format(tok).name == "hermes"

    def script(prompt):
        if "<tool_response>\n5\n</tool_response>" in prompt:
            return "It is 5."
        return 'Sure.\n<tool_call>\n{"name": "calculator", "arguments": {"expression": "2+3"}}\n</tool_call>'

    backend = ScriptedBackend(tok, script)
    [result] = run_tool_loop(
        backend, [[{"role": "user", "content": "2+3?"}]], get_tools(["calculator"]), SamplingParams()
    )
    assert result.calls == [{"name": "calculator", "argument": "2+3", "result": "5"}]
    assert result.text == "It is 5."
    first, second = backend.prompts
    assert '"name": "calculator"' in first and "<tools>" in first  # declared by the template
    assert '{"name": "calculator", "arguments": {"expression": "2+3"}}' in second
    assert result.messages[0]["tool_calls"][0]["function"]["arguments"] == {"expression": "2+3"}


def test_hermes_malformed_json_is_an_error_result(qwen2):
    _, tok = qwen2

    def script(prompt):
        return "ok" if "<tool_response>\nerror" in prompt else "<tool_call>{not json</tool_call>"

    backend = ScriptedBackend(tok, script)
    [result] = run_tool_loop(
        backend, [[{"role": "user", "content": "q"}]], get_tools(["calculator"]), SamplingParams()
    )
    assert result.calls[0]["result"].startswith("error: malformed tool call")
    assert result.text == "ok"


def test_tag_format_is_picked_for_plain_templates(llama):
    _, tok = llama
    assert pick_format(tok).name == "tag"
    with pytest.raises(ValueError, match="unknown tool-call format"):
        pick_format(tok, "xml")


def test_loop_runs_on_a_real_model(llama):
    model, tok = llama
    backend = TransformersBackend(model, tok)
    convs = [[{"role": "user", "content": "hi"}], [{"role": "user", "content": "2+2"}]]
    results = run_tool_loop(
        backend, convs, get_tools(["calculator"]), SamplingParams(max_new_tokens=8, n=2, seed=1)
    )
    assert len(results) == 4
    assert all(r.finish_reason in ("length", "eos", "stop") for r in results)
    json.dumps([r.messages for r in results])  # results are serialisable as they are
