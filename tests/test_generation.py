import pytest
import torch

from selfbake.generation import SamplingParams, TransformersBackend, sequence_logprobs
from selfbake.generation.hf import StopOnStrings
from selfbake.models import render_chat

PROMPTS = [
    ("What is 2+2?", None),
    ("Please add 17 and 25 and explain the carry.", "Think step by step."),
    ("hi", None),
    ("Reverse the word 'bake'.", "You are terse."),
]


def rendered(tokenizer):
    return [render_chat(tokenizer, user, system) for user, system in PROMPTS]


@pytest.mark.parametrize("fixture", ["llama", "qwen2"])
def test_batched_greedy_equals_sequential_greedy(fixture, request):
    model, tok = request.getfixturevalue(fixture)
    backend = TransformersBackend(model, tok, batch_size=8)
    params = SamplingParams(max_new_tokens=24, temperature=0)
    prompts = rendered(tok)
    batched = backend.generate(prompts, params)
    lengths = {len(tok(p, add_special_tokens=False).input_ids) for p in prompts}
    assert len(lengths) > 1  # the batch really needed padding
    for prompt, sample in zip(prompts, batched, strict=True):
        alone = backend.generate([prompt], params)[0]
        assert alone.token_ids == sample.token_ids
        assert alone.text == sample.text


def test_stop_string_cuts_text_and_sets_finish_reason(llama):
    model, tok = llama
    backend = TransformersBackend(model, tok)
    prompt = rendered(tok)[:1]
    free = backend.generate(prompt, SamplingParams(max_new_tokens=30, temperature=0))[0]
    assert free.finish_reason == "length"
    # random weights emit invalid UTF-8 too; stop on the first ASCII letter after a few tokens
    stop = next(ch for ch in free.text[5:] if ch.isascii() and ch.isalnum())
    cut = free.text.find(stop)
    stopped = backend.generate(prompt, SamplingParams(max_new_tokens=30, temperature=0, stop=[stop]))[0]
    assert stopped.finish_reason == "stop"
    assert stopped.stop == stop
    assert stopped.text == free.text[:cut]
    assert len(stopped.token_ids) < len(free.token_ids)
    assert stopped.token_ids == free.token_ids[: len(stopped.token_ids)]


def test_length_cap_sets_finish_reason_length(llama):
    model, tok = llama
    sample = TransformersBackend(model, tok).generate(
        rendered(tok)[:1], SamplingParams(max_new_tokens=5, temperature=0)
    )[0]
    assert sample.finish_reason == "length"
    assert len(sample.token_ids) == 5


def test_eos_and_stop_token_ids(llama):
    model, tok = llama
    backend = TransformersBackend(model, tok)
    prompt = rendered(tok)[:1]
    free = backend.generate(prompt, SamplingParams(max_new_tokens=20, temperature=0))[0]
    target = free.token_ids[3]
    first = free.token_ids.index(target)
    by_id = backend.generate(
        prompt, SamplingParams(max_new_tokens=20, temperature=0, stop_token_ids=[target])
    )[0]
    assert by_id.finish_reason == "stop"
    assert by_id.token_ids == free.token_ids[: first + 1]
    eos_backend = TransformersBackend(model, tok)
    eos_backend.eos_ids = {target}
    by_eos = eos_backend.generate(prompt, SamplingParams(max_new_tokens=20, temperature=0))[0]
    assert by_eos.finish_reason == "eos"
    assert by_eos.token_ids == free.token_ids[: first + 1]


def test_raw_logits_match_forward_pass_and_differ_from_processed_scores(llama):
    model, tok = llama
    backend = TransformersBackend(model, tok)
    prompts = rendered(tok)[:2]
    params = SamplingParams(
        max_new_tokens=6, temperature=0.5, top_k=20, seed=3, return_logits=True, logprobs=True
    )
    samples = backend.generate(prompts, params)
    for prompt, sample in zip(prompts, samples, strict=True):
        ids = tok(prompt, add_special_tokens=False, return_tensors="pt").input_ids
        full = torch.cat([ids, torch.tensor([sample.token_ids])], dim=1)
        with torch.no_grad():
            forward = model(full).logits[0, ids.shape[1] - 1 : -1]
        assert sample.logits.shape == forward.shape
        assert torch.allclose(sample.logits, forward, atol=1e-4)
        expected_lp = (
            torch.log_softmax(forward, -1).gather(-1, torch.tensor(sample.token_ids)[:, None]).squeeze(-1)
        )
        assert torch.allclose(torch.tensor(sample.logprobs), expected_lp, atol=1e-4)
    # transformers' output_scores are the processed scores (temperature, top-k), not logits
    enc = tok(prompts[:1], return_tensors="pt", add_special_tokens=False)
    torch.manual_seed(3)
    out = model.generate(
        **enc, generation_config=backend.generation_config(params), output_scores=True, output_logits=True
    )
    scores, logits = out.scores[0][0], out.logits[0][0]
    assert not torch.allclose(scores[torch.isfinite(scores)], logits[torch.isfinite(scores)])
    assert torch.isinf(scores).sum() == scores.numel() - 20  # top-k masked the rest
    assert torch.allclose(logits, samples[0].logits[0], atol=1e-4)


def test_sequence_logprobs_with_left_padding(llama):
    model, tok = llama
    prompts = ["<s>short", "<s>a much longer prompt"]
    enc = tok(prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    new = torch.tensor([[10, 11, 12], [13, 14, 15]])
    seqs = torch.cat([enc.input_ids, new], 1)
    mask = torch.cat([enc.attention_mask, torch.ones_like(new)], 1)
    batched = sequence_logprobs(model, seqs, mask, 3)
    for row, prompt in enumerate(prompts):
        ids = tok(prompt, return_tensors="pt", add_special_tokens=False).input_ids
        alone = sequence_logprobs(
            model, torch.cat([ids, new[row : row + 1]], 1), torch.ones(1, ids.shape[1] + 3), 3
        )
        assert torch.allclose(batched[row], alone[0], atol=1e-5)


def test_seed_reproducibility_and_n(llama):
    model, tok = llama
    backend = TransformersBackend(model, tok, batch_size=3)
    prompts = rendered(tok)[:2]
    params = SamplingParams(max_new_tokens=10, temperature=1.0, n=3, seed=7)
    a = backend.generate(prompts, params)
    b = backend.generate(prompts, params)
    c = backend.generate(prompts, params.model_copy(update={"seed": 8}))
    assert [s.prompt_index for s in a] == [0, 0, 0, 1, 1, 1]
    assert [s.token_ids for s in a] == [s.token_ids for s in b]
    assert [s.token_ids for s in a] != [s.token_ids for s in c]
    assert len({tuple(s.token_ids) for s in a[:3]}) > 1  # samples of one prompt differ


def test_stop_strings_ignore_the_prompt_tail(llama):
    _, tok = llama
    prompt = tok("xx ab", return_tensors="pt", add_special_tokens=False).input_ids
    stopper = StopOnStrings(tok, ["abc"], prompt.shape[1], 1, "cpu")
    step1 = torch.cat([prompt, tok("c", return_tensors="pt", add_special_tokens=False).input_ids], 1)
    assert not stopper(step1, None)[0]  # "ab" + "c" spans the prompt: no stop
    step2 = torch.cat([step1, tok("abc", return_tensors="pt", add_special_tokens=False).input_ids], 1)
    assert stopper(step2, None)[0]
    assert stopper.fired_at[0] == 4


def test_sampling_params_validation():
    with pytest.raises(ValueError):
        SamplingParams(max_new_tokens=0)
    with pytest.raises(ValueError):
        SamplingParams(top_p=0)
    with pytest.raises(ValueError):
        SamplingParams(bogus=1)
    assert SamplingParams(temperature=0).greedy


@pytest.mark.parametrize("fixture", ["llama", "qwen2"])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_in_place_kv_cache_samples_exactly_what_dynamic_cache_samples(fixture, temperature, request):
    model, tok = request.getfixturevalue(fixture)
    long_system = "You are a careful assistant who shows every step. " * 3
    shared = [render_chat(tok, f"What is {i} + {3 * i}?", long_system) for i in range(5)]
    params = SamplingParams(max_new_tokens=16, temperature=temperature, seed=7)
    for prompts in (shared, rendered(tok)):  # with and without a shared prefix
        fast = TransformersBackend(model, tok, batch_size=3, in_place_cache=True)
        slow = TransformersBackend(model, tok, batch_size=3, in_place_cache=False)
        assert fast.in_place_cache and not slow.in_place_cache
        a, b = fast.generate(prompts, params), slow.generate(prompts, params)
        assert [s.token_ids for s in a] == [s.token_ids for s in b]
        assert sum(len(s.token_ids) for s in a) > len(prompts)


def test_growing_layer_appends_in_place_and_matches_concatenation():
    from selfbake.generation.kvcache import GrowingLayer

    layer = GrowingLayer(reserve=12)
    chunks = [torch.randn(2, 3, n, 4) for n in (5, 1, 1, 1)]
    layer.update(chunks[0], chunks[0] * 2)
    buffer = layer._keys.data_ptr()
    for c in chunks[1:]:
        keys, values = layer.update(c, c * 2)
    assert layer._keys.data_ptr() == buffer  # reserved room: no reallocation, no copy
    assert torch.equal(keys, torch.cat(chunks, dim=2)) and torch.equal(values, 2 * torch.cat(chunks, dim=2))
    assert layer.get_seq_length() == 8
    for _ in range(6):  # past the reserve it grows, keeping what it had
        keys, _ = layer.update(chunks[1], chunks[1])
    assert layer.get_seq_length() == 14 and torch.equal(keys[:, :, :8], torch.cat(chunks, dim=2))


def test_sliding_window_models_keep_transformers_cache(qwen2):
    from selfbake.generation.kvcache import supports_growing_cache

    model, tok = qwen2
    model.config.use_sliding_window, model.config.sliding_window = True, 4
    try:
        assert not supports_growing_cache(model)
        assert not TransformersBackend(model, tok).in_place_cache
    finally:
        model.config.use_sliding_window = False


@pytest.mark.parametrize("q_len", [1, 4])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("masked", [True, False])
def test_shared_prefix_attention_equals_attention_over_the_whole_sequence(q_len, groups, masked):
    """Prefix scores + suffix scores under one softmax == SDPA over [prefix ; suffix] per row."""
    import torch.nn.functional as F

    from selfbake.generation.shared_prefix import shared_prefix_attention

    torch.manual_seed(0)
    batch, heads, dim, p_len, s_len = 3, 4, 8, 6, 5
    kv_heads = heads // groups
    prefix = (torch.randn(1, kv_heads, p_len, dim), torch.randn(1, kv_heads, p_len, dim))
    keys, values = torch.randn(batch, kv_heads, s_len, dim), torch.randn(batch, kv_heads, s_len, dim)
    query = torch.randn(batch, heads, q_len, dim)
    # causal over the whole row; row 1 has two padded suffix columns (its padding sits after the prefix)
    total = p_len + s_len
    allowed = torch.arange(total)[None, :] <= torch.arange(total - q_len, total)[:, None]
    mask = allowed.expand(batch, 1, q_len, total).clone()
    if masked:
        mask[1, :, :, p_len : p_len + 2] = False
    full_k = torch.cat([prefix[0].expand(batch, -1, -1, -1), keys], dim=2).repeat_interleave(groups, 1)
    full_v = torch.cat([prefix[1].expand(batch, -1, -1, -1), values], dim=2).repeat_interleave(groups, 1)
    expected = F.scaled_dot_product_attention(query, full_k, full_v, attn_mask=mask).transpose(1, 2)
    keys.selfbake_prefix = prefix

    class Module:
        num_key_value_groups = groups
        is_causal = True
        training = False

    given = None if q_len == 1 and not masked else mask  # decoding without padding may come with no mask
    out, _ = shared_prefix_attention(Module(), query, keys, values, given, scaling=dim**-0.5)
    assert torch.allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize("fixture", ["llama", "qwen2"])
def test_backend_shares_the_prefix_and_samples_what_the_replicated_cache_samples(
    fixture, request, monkeypatch
):
    from selfbake.generation import shared_prefix

    model, tok = request.getfixturevalue(fixture)
    system = "You are a careful assistant who shows every step. " * 3
    params = SamplingParams(max_new_tokens=12, temperature=1.0, seed=3, return_logits=True)
    calls = []
    original = shared_prefix.shared_prefix_attention

    def counting(module, query, key, *args, **kwargs):
        calls.append(hasattr(key, "selfbake_prefix"))
        return original(module, query, key, *args, **kwargs)

    monkeypatch.setitem(shared_prefix.AttentionInterface._global_mapping, shared_prefix.ATTENTION, counting)
    same_length = [render_chat(tok, f"What is {i} + {i}?", system) for i in range(1, 6)]
    mixed = [render_chat(tok, f"What is {i * 37} + {i}?", system) for i in range(1, 6)]
    for prompts in (same_length, mixed):  # no padding (no mask) and padding between prefix and suffix
        shared = TransformersBackend(model, tok, batch_size=3, prefix_attention=True)
        replicated = TransformersBackend(model, tok, batch_size=3, prefix_attention=False)
        assert shared.prefix_attention and replicated.in_place_cache and not replicated.prefix_attention
        calls.clear()
        a = shared.generate(prompts, params)
        assert calls and all(calls)  # every attention call went through the single prefix copy
        assert model.config._attn_implementation == "sdpa"  # restored after generate
        b = replicated.generate(prompts, params)
        assert [s.token_ids for s in a] == [s.token_ids for s in b]
        assert all(torch.allclose(x.logits, y.logits, atol=1e-4) for x, y in zip(a, b, strict=True))


def test_shared_prefix_sampling_through_a_peft_wrapper_matches_the_replicated_cache():
    from peft import LoraConfig, get_peft_model

    from selfbake.models import load

    model, tok = load("random:llama-tiny", seed=0)
    wrapped = get_peft_model(model, LoraConfig(r=2, target_modules="all-linear", task_type="CAUSAL_LM"))
    system = "You are a careful assistant who shows every step. " * 3
    prompts = [render_chat(tok, f"What is {i * 11} + {i}?", system) for i in range(4)]
    params = SamplingParams(max_new_tokens=10, temperature=1.0, seed=5)
    with wrapped.disable_adapter():
        a = TransformersBackend(wrapped, tok, batch_size=4).generate(prompts, params)
        b = TransformersBackend(wrapped, tok, batch_size=4, prefix_attention=False).generate(prompts, params)
    assert [s.token_ids for s in a] == [s.token_ids for s in b]
    assert wrapped.config._attn_implementation == "sdpa"
    from selfbake.generation.decode import keeps_last_logits

    assert keeps_last_logits(wrapped)  # under the wrapper, decoding still asks for the last position only


DECODE_PARAMS = [
    SamplingParams(max_new_tokens=64, temperature=1.0, seed=11, return_logits=True),
    SamplingParams(max_new_tokens=64, temperature=0.0, logprobs=True),
    SamplingParams(
        max_new_tokens=40, temperature=0.8, top_k=12, top_p=0.9, repetition_penalty=1.2, seed=2, stop=[": 1"]
    ),
]


@pytest.mark.parametrize("params", DECODE_PARAMS, ids=["sampled", "greedy", "processed-stop-length"])
@pytest.mark.parametrize(
    "system", ["You are a careful assistant. Think step by step. " * 2, None], ids=["shared-prefix", "none"]
)
def test_decode_drops_finished_rows_and_samples_what_generate_samples(params, system):
    """The shrinking batch gives generate's tokens, finish reasons, stops, logits and log-probs."""
    from selfbake import tasks
    from selfbake.models import load

    model, tok = load("bundled", device="cpu", dtype="float32")
    task = tasks.get("arithmetic")
    items = [
        item for level in (1, 2, 3, 4) for item in tasks.splits(task, 3, 0, 0, seed=0, difficulty=level).train
    ]
    prompts = [render_chat(tok, task.prompt(item), system) for item in items]
    rows_per_step = []
    hook = model.register_forward_pre_hook(
        lambda _m, _a, kw: rows_per_step.append(tuple(kw["input_ids"].shape)), with_kwargs=True
    )
    try:
        fast = TransformersBackend(model, tok, batch_size=12)
        a = fast.generate(prompts, params)
        shrinking = [rows for rows, width in rows_per_step if width == 1]  # decoding steps
        b = TransformersBackend(model, tok, batch_size=12, drop_finished=False).generate(prompts, params)
    finally:
        hook.remove()
    assert fast.drop_finished and fast.in_place_cache
    assert len({len(s.token_ids) for s in a}) > 1  # rows really ended at different steps
    assert shrinking[0] == 12 and shrinking[-1] < 12  # and the batch shrank as they did
    for x, y in zip(a, b, strict=True):
        assert (x.token_ids, x.text, x.finish_reason, x.stop) == (
            y.token_ids,
            y.text,
            y.finish_reason,
            y.stop,
        )
        if params.return_logits:
            assert x.logits.shape == y.logits.shape and torch.allclose(x.logits, y.logits, atol=1e-4)
        if params.logprobs:
            assert x.logprobs == pytest.approx(y.logprobs, abs=1e-4)
    if params.stop:
        assert {s.finish_reason for s in a} >= {"stop", "eos"}


@pytest.mark.parametrize(
    "options",
    [{}, {"in_place_cache": False}, {"drop_finished": False}, {"reuse_prefix": False}],
    ids=["shrinking-decode", "dynamic-cache", "generate", "no-prefix"],
)
def test_sampling_uses_the_current_cache_api_without_deprecation_warnings(llama, options):
    """transformers 5.2x renamed ``past_key_values`` to ``cache``: no FutureWarning, no deprecation log line."""
    import logging
    import warnings

    from transformers.utils import logging as hf_logging

    model, tok = llama
    long_system = "You are a careful assistant who checks every step. " * 4  # a shared prefix to reuse
    prompts = [render_chat(tok, f"What is {i} + {i}?", long_system) for i in range(3)]
    hf_logging.warning_once.cache_clear()  # the deprecation line is logged once per process
    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    hf_logger = hf_logging.get_logger("transformers")
    hf_logger.addHandler(handler)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", FutureWarning)
            samples = TransformersBackend(model, tok, **options).generate(
                prompts, SamplingParams(max_new_tokens=6, temperature=0, logprobs=True)
            )
    finally:
        hf_logger.removeHandler(handler)
    assert len(samples) == 3 and all(s.token_ids for s in samples)
    assert not [m for m in messages if "deprecated" in m], messages
