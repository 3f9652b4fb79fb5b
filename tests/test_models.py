import os
import subprocess
import sys
import warnings

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from selfbake.errors import UserError
from selfbake.models import default_system_prompt, load, render_chat, render_messages, resolve_device, save
from selfbake.models.tiny import QWEN_DEFAULT_SYSTEM


def test_random_models_are_deterministic_and_distinct():
    a, _ = load("random:llama-tiny", seed=0)
    b, _ = load("random:llama-tiny", seed=0)
    c, _ = load("random:llama-tiny", seed=1)
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        la, lb, lc = a(ids).logits, b(ids).logits, c(ids).logits
    assert torch.equal(la, lb)
    assert not torch.allclose(la, lc)


@pytest.mark.parametrize("spec", ["random:gpt2-tiny", "random:llama-huge"])
def test_bad_random_spec(spec):
    with pytest.raises(UserError, match="bad model spec"):
        load(spec)


def test_save_load_round_trip(llama, tmp_path):
    model, tokenizer = llama
    save(model, tokenizer, tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").exists()
    again, tok2 = load(str(tmp_path / "m"), device="cpu")
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    plain_tok = AutoTokenizer.from_pretrained(tmp_path / "m")
    text = render_chat(tokenizer, "12+7=?", system="Think step by step.")
    assert render_chat(tok2, "12+7=?", system="Think step by step.") == text
    assert render_chat(plain_tok, "12+7=?", system="Think step by step.") == text
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids
    assert tok2(text, add_special_tokens=False).input_ids == ids[0].tolist()
    with torch.no_grad():
        ref = model(ids).logits
        assert torch.allclose(again(ids).logits, ref, atol=1e-6)
        assert torch.allclose(plain(ids).logits, ref, atol=1e-6)
    assert tok2.padding_side == "left"


def test_llama_template_no_system_means_no_system_turn(llama):
    _, tok = llama
    assert default_system_prompt(tok) is None
    text = render_chat(tok, "hello")
    assert "system" not in text
    assert text == "<s><|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"
    assert "<|im_start|>system\nBe brief.<|im_end|>" in render_chat(tok, "hello", system="Be brief.")


def test_qwen2_style_default_system_prompt_is_detected_and_stripped(qwen2):
    _, tok = qwen2
    assert default_system_prompt(tok) == QWEN_DEFAULT_SYSTEM
    stripped = render_chat(tok, "hello")
    kept = render_chat(tok, "hello", strip_default_system=False)
    assert QWEN_DEFAULT_SYSTEM not in stripped and "system" not in stripped
    assert QWEN_DEFAULT_SYSTEM in kept
    assert kept.endswith(stripped)  # only the inserted system turn was removed
    explicit = render_chat(tok, "hello", system="Be brief.")
    assert "Be brief." in explicit and QWEN_DEFAULT_SYSTEM not in explicit
    history = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    multi = render_chat(tok, "c", history=history)
    assert "system" not in multi and multi.count("<|im_start|>user") == 2


def test_empty_system_prompt_is_a_system_turn(llama):
    _, tok = llama
    assert "<|im_start|>system\n<|im_end|>" in render_chat(tok, "hi", system="")


def test_tokenizer_without_template_uses_plain_fallback(llama):
    _, tok = llama
    import copy

    no_template = copy.deepcopy(tok)
    no_template.chat_template = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        text = render_chat(no_template, "2+2?", system="Be exact.")
    assert text == "<s>System: Be exact.\n\nUser: 2+2?\n\nAssistant:"
    assert any("no chat template" in str(w.message) for w in caught)
    assert render_messages(no_template, [{"role": "user", "content": "x"}]) == "<s>User: x\n\nAssistant:"


def test_missing_local_path(tmp_path):
    with pytest.raises(UserError, match="model directory not found"):
        load(str(tmp_path / "nope"))
    with pytest.raises(UserError, match="model directory not found"):
        load("./no/such/model")


def test_directory_without_config(tmp_path):
    with pytest.raises(UserError, match="no config.json"):
        load(str(tmp_path))
    (tmp_path / "f.bin").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        load(str(tmp_path / "f.bin"))


def test_unreachable_hub_gives_clear_error():
    code = (
        "from selfbake.models import load\n"
        "from selfbake.errors import UserError\n"
        "try:\n    load('selfbake-test/definitely-not-a-model')\n"
        "except UserError as e:\n    print('USERERROR', e)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert (
        "USERERROR cannot load model 'selfbake-test/definitely-not-a-model': "
        "not in the local Hugging Face cache and HF_HUB_OFFLINE is set"
    ) in out.stdout


def test_unreachable_hub_fails_fast(monkeypatch):
    import time

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    start = time.monotonic()
    with pytest.raises(UserError, match="not in the local Hugging Face cache and 127.0.0.1 is unreachable"):
        load("selfbake-test/definitely-not-a-model")
    assert time.monotonic() - start < 30


def test_device_selection():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(UserError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA is not available"):
            resolve_device("cuda")


# --- a bake's run directory, its adapter directory and its --merge output load like any model (issue 26)


@pytest.fixture(scope="module")
def baked_run(tmp_path_factory):
    from tinyruns import tiny_bake

    return tiny_bake(tmp_path_factory.mktemp("bake") / "run", "--merge")


def _logits(model, tok, text="What is 2 + 2?"):
    ids = tok(render_chat(tok, text), return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        return model(**ids).logits


def test_a_bake_run_and_its_adapter_load_as_the_baked_model(baked_run):
    from selfbake.baking import load_baked
    from selfbake.models import load_adapter_stack

    reference, tok = load_baked(baked_run)
    expected = _logits(reference, tok)
    base, _ = load("random:llama-tiny")
    assert not torch.allclose(_logits(base, tok), expected, atol=1e-3)  # the bake changed the model
    for spec in (baked_run, baked_run / "adapter", baked_run / "merged"):
        model, tok = load(str(spec))
        assert type(model).__name__ == "LlamaForCausalLM"  # a plain model every command can use
        assert torch.allclose(_logits(model, tok), expected, atol=1e-5), spec
    stacked, tok = load_adapter_stack(baked_run)  # unmerged: load_baked's model exactly
    assert torch.equal(_logits(stacked, tok), expected)


def test_an_adapter_keeps_the_base_seed_of_its_run(baked_run, tmp_path):
    """A random: base is rebuilt with the run's seed; another seed is another base."""
    import shutil

    import yaml

    other = tmp_path / "run"
    shutil.copytree(baked_run, other)
    config = yaml.safe_load((other / "config.yaml").read_text())
    (other / "config.yaml").write_text(yaml.safe_dump({**config, "seed": 5}))
    same, tok = load(str(baked_run))
    reseeded, _ = load(str(other))
    assert not torch.allclose(_logits(same, tok), _logits(reseeded, tok), atol=1e-3)


def test_a_run_directory_without_an_adapter_says_so(tmp_path):
    (tmp_path / "config.yaml").write_text("model: random:llama-tiny\n")
    with pytest.raises(UserError, match="no adapter_config.json.*run directory without adapter/"):
        load(str(tmp_path))


def _corrupt(path, how):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if how == "truncated" else os.urandom(4096))


@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_corrupt_model_weights_are_a_user_error_naming_the_file(llama, tmp_path, how):
    from selfbake.errors import WeightsError

    save(*llama, tmp_path / "m")
    _corrupt(tmp_path / "m" / "model.safetensors", how)
    with pytest.raises(WeightsError, match=r"corrupt or truncated weights file .*m/model\.safetensors"):
        load(str(tmp_path / "m"))


@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_corrupt_adapter_weights_are_a_user_error_naming_the_file(baked_run, tmp_path, how):
    import shutil

    from selfbake.baking import load_baked
    from selfbake.errors import WeightsError
    from selfbake.models import load_adapter_stack

    run = tmp_path / "run"
    shutil.copytree(baked_run, run, ignore=shutil.ignore_patterns("merged", "checkpoints"))
    _corrupt(run / "adapter" / "adapter_model.safetensors", how)
    for loader in (load, load_adapter_stack, load_baked):
        with pytest.raises(WeightsError, match=r"run/adapter/adapter_model\.safetensors"):
            loader(str(run))


@pytest.mark.parametrize("target", ["model", "adapter"])
def test_cli_corrupt_weights_exit_2_with_one_line(baked_run, llama, tmp_path, capsys, target):
    import shutil

    from selfbake.cli import main

    if target == "model":
        spec = save(*llama, tmp_path / "m")
        bad = spec / "model.safetensors"
    else:
        spec = tmp_path / "run"
        shutil.copytree(baked_run, spec, ignore=shutil.ignore_patterns("merged", "checkpoints"))
        bad = spec / "adapter" / "adapter_model.safetensors"
    _corrupt(bad, "truncated")
    capsys.readouterr()  # the save's own progress lines
    code = main(["generate", "--model", str(spec), "--prompt", "hi", "--out", str(tmp_path / "g")])
    err = capsys.readouterr().err
    assert code == 2 and str(bad) in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1


def test_cli_eval_and_generate_take_a_bake_run_and_its_adapter(baked_run, tmp_path, capsys):
    """eval --model RUN gives the --merge output's answers, not the base's; generate --model RUN/adapter
    samples what load_baked's model samples."""
    import json

    from tinyruns import tiny_eval

    from selfbake.baking import load_baked
    from selfbake.cli import main
    from selfbake.generation import SamplingParams, TransformersBackend

    def answers(model):
        out = tiny_eval(tmp_path / f"eval-{len(list(tmp_path.iterdir()))}", model)
        return [json.loads(x)["output"] for x in (out / "samples.jsonl").read_text().splitlines()]

    baked = answers(str(baked_run))
    assert baked == answers(str(baked_run / "merged"))
    assert baked != answers("random:llama-tiny")

    prompt = "What is 2 + 2?"
    args = ["--model", str(baked_run / "adapter"), "--temperature", "0", "--max-new-tokens", "10"]
    code = main(["generate", *args, "--prompt", prompt, "--out", str(tmp_path / "g")])
    assert code == 0, capsys.readouterr().err
    sample = json.loads((tmp_path / "g" / "samples.jsonl").read_text().splitlines()[0])
    model, tok = load_baked(baked_run)
    params = SamplingParams(temperature=0, max_new_tokens=10)
    expected = TransformersBackend(model, tok).generate([render_chat(tok, prompt)], params)[0]
    base_model, _ = load("random:llama-tiny")
    base = TransformersBackend(base_model, tok).generate([render_chat(tok, prompt)], params)[0]
    assert sample["text"] == expected.text and expected.token_ids != base.token_ids
