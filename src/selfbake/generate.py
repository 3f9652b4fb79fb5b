"""``selfbake generate``: sample from any model, optionally with tools, into a run directory.

The thin loop over ``selfbake.generation``: read prompts, render them with the
chat template (no system turn unless ``--system``), sample in batches with a
progress bar, print the answers, and write config.yaml, metrics.jsonl,
samples.jsonl and summary.json.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

from pydantic import Field, model_validator
from rich.console import Console

from selfbake.config import ModelRunConfig
from selfbake.errors import UserError
from selfbake.generation import SamplingParams, TransformersBackend, run_tool_loop
from selfbake.models import load
from selfbake.tools import get_tools
from selfbake.tracking import progress_bar
from selfbake.tracking.progress import make_console
from selfbake.tracking.rundir import open_run


class GenerateConfig(ModelRunConfig):
    """Settings of ``selfbake generate``."""

    prompt: str | None = Field(None, description="one user prompt")
    prompts: str | None = Field(None, description="file of prompts: .txt (a line each), .jsonl or .json")
    max_new_tokens: int = Field(128, gt=0, description="tokens to generate at most, per answer")
    temperature: float = Field(0.7, ge=0.0, description="sampling temperature; 0 = greedy")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="nucleus sampling mass")
    top_k: int = Field(0, ge=0, description="top-k sampling; 0 = off")
    repetition_penalty: float = Field(1.0, gt=0.0, description="repetition penalty; 1 = off")
    stop: list[str] = Field(default_factory=list, description="stop string (repeatable)")
    n: int = Field(1, gt=0, description="samples per prompt")
    logprobs: bool = Field(False, description="save the sampled tokens' log-probs in samples.jsonl")

    @model_validator(mode="after")
    def one_prompt_source(self):
        if self.prompt is not None and self.prompts is not None:
            raise ValueError("give --prompt or --prompts, not both")
        if self.prompt is None and self.prompts is None:
            raise ValueError("no prompt: give --prompt TEXT or --prompts FILE")
        if self.prompt is not None and not self.prompt.strip():
            raise ValueError("empty prompt")
        return self


def read_prompts(path: str, default_system: str | None) -> list[tuple[str | None, str]]:
    """(system, user) pairs from a .txt, .jsonl or .json file."""
    file = Path(path)
    try:
        text = file.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise UserError(f"cannot read prompts file {path}: {reason}") from None
    pairs: list[tuple[str | None, str]] = []
    if file.suffix in (".jsonl", ".json"):
        try:
            items = (
                json.loads(text)
                if file.suffix == ".json"
                else [json.loads(x) for x in text.splitlines() if x.strip()]
            )
        except json.JSONDecodeError as exc:
            raise UserError(
                f"prompts file {path} is not valid JSON: {exc.msg} at line {exc.lineno}"
            ) from None
        for number, item in enumerate(items if isinstance(items, list) else [], 1):
            if isinstance(item, str):
                item = {"prompt": item}
            if not isinstance(item, dict) or not isinstance(item.get("prompt"), str):
                raise UserError(f"prompts file {path}: item {number} has no string 'prompt' field")
            pairs.append((item.get("system", default_system), item["prompt"]))
    else:
        pairs = [(default_system, line) for line in text.splitlines() if line.strip()]
    if not pairs:
        raise UserError(f"prompts file {path} holds no prompts")
    for number, (_, prompt) in enumerate(pairs, 1):
        if not prompt.strip():
            raise UserError(f"prompts file {path}: prompt {number} is empty")
    return pairs


def run_generate(config: GenerateConfig, console: Console | None = None) -> Path:
    console = console or make_console()
    pairs = (
        [(config.system, config.prompt)]
        if config.prompt is not None
        else read_prompts(config.prompts, config.system)
    )
    tools = get_tools(config.tools)
    model, tokenizer = load(config.model, dtype=config.dtype, device=config.device, seed=config.seed)
    run = open_run("generate", config, config.out, overwrite=config.overwrite, report_to=config.report_to)
    backend = TransformersBackend(model, tokenizer, batch_size=config.batch_size)
    # the sampling settings are the SamplingParams fields of the same name
    params = SamplingParams(**config.model_dump(include=set(SamplingParams.model_fields)))
    conversations = [
        ([{"role": "system", "content": s}] if s is not None else []) + [{"role": "user", "content": u}]
        for s, u in pairs
    ]
    records, new_tokens, reasons = [], 0, Counter()
    started = time.perf_counter()
    with progress_bar(len(pairs), "generating", enabled=len(pairs) > config.batch_size) as advance:
        for step, start in enumerate(range(0, len(pairs), config.batch_size)):
            batch = conversations[start : start + config.batch_size]
            t0 = time.perf_counter()
            if tools:
                results = run_tool_loop(
                    backend,
                    batch,
                    tools,
                    params,
                    call_format=config.tool_format,
                    max_calls=config.max_tool_calls,
                )
                batch_records = [
                    {
                        "text": r.text,
                        "finish_reason": r.finish_reason,
                        "new_tokens": r.new_tokens,
                        "tool_calls": r.calls,
                        "messages": r.messages,
                    }
                    for r in results
                ]
            else:
                samples = backend.chat(batch, params)
                batch_records = [s.to_record() for s in samples]
            for index, record in enumerate(batch_records):
                prompt_index = start + index // config.n
                record.update(
                    prompt_index=prompt_index,
                    sample_index=index % config.n,
                    system=pairs[prompt_index][0],
                    prompt=pairs[prompt_index][1],
                )
                reasons[record["finish_reason"]] += 1
                new_tokens += record.get("new_tokens", 0)
            batch_tokens = sum(r.get("new_tokens", 0) for r in batch_records)
            elapsed = time.perf_counter() - t0
            run.log(
                step,
                samples=len(batch_records),
                new_tokens=batch_tokens,
                tokens_per_s=batch_tokens / max(elapsed, 1e-9),
            )
            records.extend(batch_records)
            advance(len(batch))
    seconds = time.perf_counter() - started
    for record in records:
        header = f"[{record['prompt_index']}.{record['sample_index']}] {record['prompt'][:60]!r} ({record['finish_reason']})"
        console.print(header, style="bold", markup=False)
        for call in record.get("tool_calls", []):
            console.print(f"  tool {call['name']}({call['argument']!r}) -> {call['result']!r}", markup=False)
        console.print(record["text"], markup=False)
    run.write_samples(records)
    summary = {
        "command": "generate",
        "model": config.model,
        "prompts": len(pairs),
        "samples": len(records),
        "new_tokens": new_tokens,
        "tokens_per_s": round(new_tokens / max(seconds, 1e-9), 2),
        "finish_reasons": dict(reasons),
        "tool_calls": sum(len(r.get("tool_calls", [])) for r in records),
        "seconds": round(seconds, 3),
    }
    run.finish(summary)
    console.print(f"run directory: {run.path}", markup=False, soft_wrap=True)
    return run.path
