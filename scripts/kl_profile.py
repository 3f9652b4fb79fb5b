"""Where a prompt's KL sits along the trajectory, and why a half-bake can keep the unbaked behaviour.

Prompt Baking (Bhargava et al., arXiv 2409.13697) measures strength as
1 - KL(teacher||baked)/KL(teacher||unbaked), averaged over trajectory tokens.
A behaviour such as "write steps" is decided at a turn's first token, where
the unprompted model's log-probability of the prompted choice can be very
low; strength is linear in nats there, the behaviour rate is exponential. This
bakes a prompt fully, then scales the adapter (peft's ``rescale_adapter_scale``)
to sweep strength, and prints for each scale: held-out strength, the mean KL
at the first trajectory token and after it, and the behaviour rate and
accuracy sampled at T=1 on the frozen test split (Wilson 95 %).

    python scripts/kl_profile.py                        # bundled:reasoning, ~3 min on 2 cores
    python scripts/kl_profile.py --preset bundled:verify --n 300
"""

from __future__ import annotations

import argparse

import torch
from peft.helpers import rescale_adapter_scale

from selfbake.baking import Baker, BakeSettings, load_questions, measure, presets
from selfbake.baking import loss as L
from selfbake.baking.bake import _layout
from selfbake.models import load


@torch.no_grad()
def first_and_rest(baker: Baker, students, targets) -> tuple[float, float]:
    """Mean KL at each trajectory's first trained token, and per token after it."""
    _, head = L.decoder_and_head(baker.model)
    first, rest, n_rest = 0.0, 0.0, 0
    for enc, target in zip(students, targets, strict=True):
        b = _layout([enc], baker.pad)
        hidden = L.gathered_hidden(baker.model, b.ids, b.mask, b.rows, b.cols)
        student = torch.log_softmax(head(hidden).float(), dim=-1)
        kl = (target.logprobs.exp() * (target.logprobs - student)).sum(-1)
        first += float(kl[0])
        rest, n_rest = rest + float(kl[1:].sum()), n_rest + len(kl) - 1
    return first / len(students), rest / max(n_rest, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="bundled:reasoning")
    parser.add_argument("--scales", default="0,0.05,0.08,0.11,0.14,0.18,0.24,1")
    parser.add_argument("--n", type=int, default=300, help="test items per behaviour measurement")
    args = parser.parse_args()
    preset = presets.get(args.preset)
    torch.manual_seed(0)
    model, tok = load("bundled")
    settings = BakeSettings(tools=list(preset.tools))
    spec = f"task:{preset.task}:{','.join(map(str, preset.levels))}"
    questions = load_questions(spec, settings.n_train + settings.n_val, 0, preset.levels)
    baker = Baker(model, tok, preset.text, settings)
    result = baker.run(questions[: settings.n_train], questions[settings.n_train :])
    teacher, students = baker.encode(result.val)
    targets = baker.targets(teacher, baker.form, False)
    print(
        f"{args.preset}: full bake strength {result.strength:.3f}, {len(students)} held-out trajectories, "
        f"behaviour '{preset.behaviour}' sampled at T=1 on {args.n} test items"
    )
    print(
        f"{'scale':>6}{'strength':>10}{'KL first':>10}{'KL rest':>9}{'behaviour [95% CI]':>28}{'accuracy':>10}"
    )
    for scale in [float(x) for x in args.scales.split(",")]:
        with rescale_adapter_scale(baker.model, scale):
            strength = 1 - baker.val_kl(students, targets) / result.kl_unbaked
            first, rest = first_and_rest(baker, students, targets)
            table = measure.behaviour(
                baker.model,
                baker.model,
                tok,
                preset.text,
                behaviour_name=preset.behaviour,
                task=preset.task,
                levels=preset.levels,
                tools=preset.tools,
                n=args.n,
                conditions=("baked_unprompted",),
                temperature=1.0,
            )["baked_unprompted"]
        b = table["behaviour"]
        cell = f"{b['rate']:.3f} [{b['ci95'][0]:.3f}, {b['ci95'][1]:.3f}]"
        print(
            f"{scale:>6.2f}{strength:>10.3f}{first:>10.2f}{rest:>9.3f}{cell:>28}"
            f"{table['accuracy']['rate']:>10.3f}"
        )


if __name__ == "__main__":
    main()
