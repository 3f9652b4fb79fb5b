"""The bundled model's recipe: curriculum, encoding, training, resume, and the shipped checkpoint."""

import json
import random
import re

import pytest
import torch

from selfbake.forge import curriculum
from selfbake.forge.train import (
    ForgeConfig,
    backward_step,
    build_model,
    chatml_segments,
    encode,
    encode_text,
    make_batch,
    step_batches,
    train,
)
from selfbake.models import load, render_messages
from selfbake.models.tiny import build_tokenizer
from selfbake.tasks import language


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer("llama")


@pytest.fixture(scope="module")
def examples():
    rng = random.Random(123)
    return [curriculum.example(rng) for _ in range(1500)]


def test_fast_encoding_equals_the_chat_template(tokenizer, examples):
    for messages in examples[:300]:
        assert "".join(text for text, _ in chatml_segments(messages)) == render_messages(
            tokenizer, messages, add_generation_prompt=False
        )


def test_lookup_encoding_equals_the_tokenizer(tokenizer, examples):
    for messages in examples[:300]:
        text = "".join(text for text, _ in chatml_segments(messages))
        assert encode(tokenizer, messages)[0] == tokenizer(text, add_special_tokens=False).input_ids
    for text in ["é<|im_end|>x ∑ 🙂", "<|im_start|>tool\n<s><|pad|>", ""]:
        assert encode_text(tokenizer, text) == tokenizer(text, add_special_tokens=False).input_ids


def test_loss_mask_covers_exactly_the_assistant_turns(tokenizer, examples):
    for messages in examples[:100]:
        ids, mask = encode(tokenizer, messages)
        trained = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m])
        expected = "".join(m["content"] + "<|im_end|>" for m in messages if m["role"] == "assistant")
        assert trained == expected


def test_curriculum_never_shows_held_out_paraphrases_or_test_items(examples):
    text = json.dumps(examples)
    for paraphrases in language.HELD_OUT.values():
        for sentence in paraphrases:
            assert sentence not in text
    excluded = curriculum.excluded_keys()
    from selfbake import tasks

    questions = {m["content"] for ex in examples for m in ex if m["role"] == "user"}
    for name in ("arithmetic", "rpn", "brackets", "bignum"):
        for item in tasks.splits(tasks.get(name), 0, 0, 200, seed=0, difficulty=2).test:
            assert item.key in excluded
            assert item.question not in questions


def test_curriculum_behaviours_are_detectable(examples):
    seen = {"direct": 0, "steps": 0, "tool": 0, "greeting": 0, "self": 0}
    for messages in examples:
        system = next((m["content"] for m in messages if m["role"] == "system"), None)
        reply = "\n".join(m["content"] for m in messages if m["role"] == "assistant")
        if system is None and messages[0]["content"] not in language.SELF_DESCRIBE:
            assert language.is_direct(reply)
            seen["direct"] += 1
        if system and any(s in system for s in language.REASONING):
            assert language.has_steps(reply)
            seen["steps"] += 1
        if system and system in language.TOOLS:
            assert language.has_tool_call(reply)
            seen["tool"] += 1
        if system and any(s in system for s in language.STYLES["greeting"][0]):
            assert language.has_marker("greeting", reply)
            seen["greeting"] += 1
        if messages[0]["content"] in language.SELF_DESCRIBE:
            assert language.parse_instructions(reply)
            seen["self"] += 1
    assert all(count > 20 for count in seen.values()), seen


def test_batches_are_packed_and_reproducible(tokenizer):
    a = make_batch(tokenizer, 0, 5, 4)
    b = make_batch(tokenizer, 0, 5, 4)
    c = make_batch(tokenizer, 0, 6, 4)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])
    assert a[1].float().mean() > 0.7  # little padding


def test_length_batches_start_each_conversation_at_position_zero(tokenizer):
    config = ForgeConfig(out="unused", batching="by-length", batch_size=4, micro_tokens=600)
    batches, tokens = step_batches(tokenizer, config, 5)
    again, _ = step_batches(tokenizer, config, 5)
    other, _ = step_batches(tokenizer, config, 6)
    assert all(
        torch.equal(x[0], y[0]) and torch.equal(x[2], y[2]) for x, y in zip(batches, again, strict=True)
    )
    assert not torch.equal(batches[0][0], other[0][0])
    assert tokens >= 4 * 512
    widths = [ids.shape[1] for ids, _, _ in batches]
    assert len(batches) > 1 and widths == sorted(widths, reverse=True)
    for ids, attention, labels in batches:
        assert attention is None
        assert (ids[:, 0] == tokenizer.bos_token_id).all()  # one conversation per row, from position 0
        assert ids.numel() <= 600 or ids.shape[0] == 1
        real = ids != tokenizer.pad_token_id
        assert real[:, 0].all() and (real[:, :-1] >= real[:, 1:]).all()  # padding only at the end
        assert (labels[~real] == -100).all()
        assert int((ids == tokenizer.bos_token_id).sum()) == ids.shape[0]  # never two conversations in a row


def test_micro_batches_give_the_gradient_of_one_batch(tokenizer):
    config = ForgeConfig(out="unused", batching="by-length", batch_size=2, micro_tokens=500)
    batches, _ = step_batches(tokenizer, config, 3)
    assert len(batches) > 1
    model = build_model("quick", tokenizer, 0)
    loss = backward_step(model, batches)
    micro = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    width = max(ids.shape[1] for ids, _, _ in batches)
    pad = torch.nn.functional.pad
    ids = torch.cat([pad(i, (0, width - i.shape[1]), value=tokenizer.pad_token_id) for i, _, _ in batches])
    labels = torch.cat([pad(lab, (0, width - lab.shape[1]), value=-100) for _, _, lab in batches])
    whole = model(input_ids=ids, labels=labels).loss
    whole.backward()
    assert loss == pytest.approx(whole.item(), rel=1e-5)
    for a, p in zip(micro, model.parameters(), strict=True):
        torch.testing.assert_close(a, p.grad, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("batching", ["by-length", "packed"])
def test_training_lowers_the_loss_and_resume_is_exact(tmp_path, batching):
    config = ForgeConfig(
        out=str(tmp_path / "a"),
        quick=True,
        steps=6,
        batch_size=2,
        batching=batching,
        checkpoint_every=3,
        warmup=2,
        measure=False,
    )
    tokenizer = build_tokenizer("llama")
    held_out = step_batches(tokenizer, config.model_copy(update={"seed": 99}), 0)[0]

    def held_out_loss(model):
        with torch.no_grad():
            return sum(model(input_ids=ids, labels=labels).loss.item() for ids, _, labels in held_out)

    before = held_out_loss(build_model("quick", tokenizer, config.seed))
    model_a, _, stats = train(config)
    assert stats["steps"] == 6
    assert held_out_loss(model_a) < before - 0.5

    class Stop(Exception):
        pass

    count = [0]

    def stop_after_four(n):
        count[0] += n
        if count[0] == 4:
            raise Stop

    config_b = config.model_copy(update={"out": str(tmp_path / "b")})
    with pytest.raises(Stop):
        train(config_b, advance=stop_after_four)
    assert (tmp_path / "b" / "forge_state.pt").exists()  # saved at step 3
    model_b, _, stats_b = train(config_b)
    assert stats_b["steps"] == 6
    for (name, p), q in zip(model_a.named_parameters(), model_b.parameters(), strict=True):
        assert torch.equal(p, q), name


def test_quick_forge_cli_writes_a_loadable_model(tmp_path):
    from selfbake.cli import main

    out = tmp_path / "m"
    assert main(["forge", "--out", str(out), "--quick", "--steps", "20", "--no-measure"]) == 0
    for name in ("config.json", "model.safetensors", "tokenizer.json", "README.md", "forge_stats.json"):
        assert (out / name).exists(), name
    assert not (out / "forge_state.pt").exists()
    model, tokenizer = load(str(out), device="cpu")
    first = model.model.layers[0].self_attn.q_proj.weight
    assert first.abs().sum() > 0
    assert json.loads((out / "forge_stats.json").read_text())["steps"] == 20


def test_forge_measures_on_the_frozen_test_split_whatever_its_seed(tmp_path, monkeypatch):
    from selfbake.cli import main
    from selfbake.forge import behaviour

    seeds = []
    monkeypatch.setattr(behaviour, "measure", lambda *a, seed=0, **k: seeds.append(seed) or None)
    monkeypatch.setattr(behaviour, "write_card", lambda *a, **k: None)
    assert main(["forge", "--out", str(tmp_path / "m"), "--quick", "--steps", "2", "--seed", "3"]) == 0
    assert seeds == [0]


def test_language_detectors():
    assert language.has_steps("4 * 5 = 20\n3 + 20 = 23\nAnswer: 23")
    assert not language.has_steps("Answer: 23")
    assert language.has_steps("stack: ( [\nAnswer: ] )")
    assert language.has_tool_call("<call>calculator: 1 + 2</call>", "calculator")
    assert language.has_marker("greeting", "Hello!\nAnswer: 3") and not language.has_marker(
        "greeting", "Answer: 3"
    )
    assert language.has_marker("signoff", "Answer: 3\nCheers.")
    assert language.is_direct("Answer: 42") and not language.is_direct("Answer: 42\nCheck: 6 * 7 = 42")
    assert language.parse_instructions("Think step by step. Start by saying hello.") == [
        "reasoning",
        "greeting",
    ]
    assert language.parse_instructions("I like turtles.") is None


@pytest.mark.slow
def test_shipped_model_behaviour_table():
    """The documented measurement of the shipped checkpoint (300 items per cell); bars as in the model card."""
    from selfbake.forge.behaviour import measure

    model, tokenizer = load("bundled", device="cpu", dtype="float32")
    table = measure(model, tokenizer, n=300)
    a = table["arithmetic_3_4_operands"]
    assert table["unprompted_direct"]["rate"] >= 0.95
    assert a["reasoning_vs_none"]["diff"] >= 0.25
    assert a["held_out_vs_none"]["diff"] >= 0.10
    assert table["tool_prompt_calls_calculator"]["rate"] >= 0.90
    assert table["bignum"]["none"]["rate"] <= 0.30 and table["bignum"]["tool_prompt"]["rate"] >= 0.90
    assert (
        table["style_greeting"]["prompted"]["rate"] >= 0.95
        and table["style_greeting"]["unprompted"]["rate"] <= 0.02
    )
    assert table["self_description"]["rate"] >= 0.80


def test_shipped_bundled_model_loads_and_follows_instructions():
    """Fast checks of the checkpoint in the package; the full table is the slow test above."""
    from selfbake.generation import SamplingParams, TransformersBackend
    from selfbake.models import render_chat

    model, tokenizer = load("bundled", device="cpu", dtype="float32")
    assert type(model).__name__ == "LlamaForCausalLM" and tokenizer.chat_template
    backend = TransformersBackend(model, tokenizer)
    question = "What is 3 + 4 * 2?"
    greedy = SamplingParams(temperature=0, max_new_tokens=64)
    direct, stepped, greeted = backend.generate(
        [
            render_chat(tokenizer, question),
            render_chat(tokenizer, question, system=language.REASONING[0]),
            render_chat(tokenizer, question, system=language.STYLES["greeting"][0][0]),
        ],
        greedy,
    )
    assert language.is_direct(direct.text) and direct.text.startswith("Answer:")
    assert language.has_steps(stepped.text)
    assert language.has_marker("greeting", greeted.text)
    from selfbake.models.loading import bundled_path

    card = (bundled_path() / "README.md").read_text()
    assert "| behaviour | measured |" in card


def test_mix_overrides_the_curriculum_weights_and_rejects_unknown_names(tokenizer):
    default = make_batch(tokenizer, 0, 7, 2)
    assert all(
        torch.equal(x, y) for x, y in zip(default, make_batch(tokenizer, 0, 7, 2, mix={}), strict=True)
    )
    only = {kind: 0.0 for kind, _ in curriculum.MIX} | {"tools": 1.0, "tools.arithmetic": 0.0}
    only |= {"tools.lookup": 0.0, "tools.fileread": 0.0}
    rng = random.Random(3)
    for _ in range(30):
        messages = curriculum.example(rng, only)
        assert any(m["role"] == "tool" for m in messages)
        assert any(m["role"] == "assistant" and "calculator" in m["content"] for m in messages)
    assert curriculum.parse_mix("tools=0.22, tools.bignum=0.45") == {"tools": 0.22, "tools.bignum": 0.45}
    for bad, words in [
        ("tool=0.3", "unknown mix weight 'tool'"),
        ("tools=x", "needs a number"),
        ("self=-1", ">= 0"),
    ]:
        with pytest.raises(ValueError, match=words):
            curriculum.parse_mix(bad)
    with pytest.raises(ValueError, match="unknown mix weight"):
        ForgeConfig(out="unused", mix="drills=1")


def _trigrams(sentence: str) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z'-]+", sentence.lower())
    return {tuple(words[i : i + 3]) for i in range(len(words) - 2)}


def test_extended_paraphrases_are_trained_recognised_and_share_nothing_with_the_held_out_ones():
    held_out = {g for sentences in language.HELD_OUT.values() for s in sentences for g in _trigrams(s)}
    for kind, sentences in language.EXTRA.items():
        assert len(set(sentences)) == len(sentences) >= 5
        for sentence in sentences:
            assert not _trigrams(sentence) & held_out, sentence
            assert language.kind_of(sentence) == kind
    rng = random.Random(4)
    extended = [curriculum.example(rng, extended=True) for _ in range(1500)]
    systems = [m["content"] for ex in extended for m in ex if m["role"] == "system"]
    sentences = [s for system in systems for s in re.split(r"(?<=[.!?])\s+", system)]
    extra = {s for pool in language.EXTRA.values() for s in pool}
    assert 0.3 < sum(s in extra for s in sentences) / len(sentences) < 0.7
    assert all(language.kind_of(s) for s in sentences)
    text = json.dumps(extended)
    assert not any(s in text for pool in language.HELD_OUT.values() for s in pool)


def test_the_default_curriculum_stream_is_unchanged_by_the_new_options(tokenizer):
    import hashlib

    # the first shipped recipe's conversation stream (the defaults), hashed before these options existed
    rng = random.Random(9)
    stream = json.dumps([curriculum.example(rng, None, extended=False, bignum_rounds=1) for _ in range(400)])
    assert hashlib.sha256(stream.encode()).hexdigest() == (
        "f60c95b32706e7b272bf32e7c84a90d10f48256dc73c162b6dab9740dfe69398"
    )
    config = ForgeConfig(out="unused", batching="by-length")
    plain = step_batches(tokenizer, config, 3)
    extended = step_batches(tokenizer, config.model_copy(update={"paraphrases": "extended"}), 3)
    assert plain[1] == step_batches(tokenizer, config, 3)[1]
    assert not all(torch.equal(x[0], y[0]) for x, y in zip(plain[0], extended[0], strict=False))


def test_bignum_rounds_ask_several_questions_each_answered_from_its_own_tool_result():
    only = {kind: 0.0 for kind, _ in curriculum.MIX} | {"tools": 1.0}
    only |= {"tools.arithmetic": 0.0, "tools.lookup": 0.0, "tools.fileread": 0.0}
    rng = random.Random(6)
    rounds = []
    for _ in range(60):
        messages = curriculum.example(rng, only, bignum_rounds=3)
        users = [m for m in messages if m["role"] == "user"]
        tools = [m["content"] for m in messages if m["role"] == "tool"]
        answers = [
            m["content"] for m in messages if m["role"] == "assistant" and m["content"].startswith("Answer:")
        ]
        assert len(users) == len(tools) == len(answers)
        assert answers == [f"Answer: {result}" for result in tools]
        assert all(result.lstrip("-").isdigit() for result in tools)
        rounds.append(len(users))
    assert set(rounds) == {1, 2, 3}
    rng = random.Random(6)
    assert all(sum(m["role"] == "user" for m in curriculum.example(rng, only)) == 1 for _ in range(30))
    with pytest.raises(ValueError):
        ForgeConfig(out="unused", bignum_rounds=0)


def test_the_elementary_phase_drills_single_digit_facts_and_bignum_copying_then_ends(tokenizer):
    rng = random.Random(4)
    facts = chats = 0
    for _ in range(200):
        messages = curriculum.example(rng, None, elementary=True)
        if messages[0]["role"] == "system":
            tools = [m["content"] for m in messages if m["role"] == "tool"]
            assert messages[-1]["content"] == f"Answer: {tools[0]}"
            assert language.kind_of(messages[0]["content"]) == "tools"
            assert messages[2]["content"].startswith("<call>calculator: ")
            chats += 1
            continue
        assert len(messages) == 10
        for question, answer in zip(messages[::2], messages[1::2], strict=True):
            a, op, b = re.fullmatch(r"What is (\d) ([-+*]) (\d)\?", question["content"]).groups()
            assert answer["content"] == f"Answer: {eval(a + op + b)}"
        facts += 1
    assert 0.6 < facts / 200 < 0.8 and chats > 0
    config = ForgeConfig(out="unused", batching="by-length", steps=20, elementary_steps=5)
    phase, _ = step_batches(tokenizer, config, 4)
    after, _ = step_batches(tokenizer, config, 5)
    plain, _ = step_batches(tokenizer, config.model_copy(update={"elementary_steps": 0}), 4)
    step_line = re.compile(r"^-?\d+ [-+*] -?\d+ = -?\d+$", re.M)

    def texts(batches):
        return [tokenizer.decode(ids[ids != tokenizer.pad_token_id]) for batch in batches for ids in batch[0]]

    assert all("What is" in t for t in texts(phase)) and not any(step_line.search(t) for t in texts(phase))
    assert any(step_line.search(t) for t in texts(after)) and any(step_line.search(t) for t in texts(plain))
    with pytest.raises(ValueError, match="fewer than"):
        ForgeConfig(out="unused", steps=100, elementary_steps=100)


def test_reproduce_command_names_the_recipe_flags():
    from selfbake.forge.behaviour import reproduce_command

    config = ForgeConfig(
        out="x",
        batching="by-length",
        steps=1500,
        paraphrases="extended",
        bignum_rounds=3,
        mix="tools=0.2",
        elementary_steps=150,
    )
    command = reproduce_command(config)
    for flag in (
        "--elementary-steps 150",
        "--steps 1500",
        "--batching by-length",
        "--paraphrases extended",
        "--bignum-rounds 3",
        "--mix",
    ):
        assert flag in command
    assert reproduce_command(ForgeConfig(out="x")) == "selfbake forge --out DIR --seed 0"
