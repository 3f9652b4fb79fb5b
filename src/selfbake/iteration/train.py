"""Fine-tune a LoRA on kept solutions with TRL's SFTTrainer (loss on the completion only).

Each example is (the chat-rendered problem with no system turn, the model's own
verified answer). ReST-EM (Singh et al. 2023, arXiv 2312.06585) trains every
iteration from the base model, which avoids drifting on its own outputs; the
``continue`` mode trains the previous adapter further instead, as STaR's
original loop did not. The trainer runs with a fixed seed and no shuffling
outside it, so a resumed run reproduces an uninterrupted one.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from peft import LoraConfig, PeftModel


def sft_lora(
    base,
    tokenizer,
    examples: list[dict[str, str]],
    out_dir: str | Path,
    *,
    init_adapter: str | Path | None = None,
    rank: int = 8,
    alpha: float = 16.0,
    lr: float = 1e-3,
    epochs: int = 2,
    batch_size: int = 16,
    max_length: int = 512,
    seed: int = 0,
):
    """Train a LoRA on prompt/completion pairs; save it to ``out_dir``; return the PeftModel."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import datasets  # imported here: trl and datasets are slow to import
    from transformers import PrinterCallback, set_seed
    from trl import SFTConfig, SFTTrainer

    datasets.disable_progress_bars()
    set_seed(seed)  # the LoRA's initialisation, before the trainer wraps the model

    logging.getLogger("trl").setLevel(logging.ERROR)
    if init_adapter is not None:
        model = PeftModel.from_pretrained(base, str(init_adapter), is_trainable=True)
        peft_config = None
    else:
        model = base
        peft_config = LoraConfig(
            r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"
        )
    args = SFTConfig(
        output_dir=str(out_dir),
        num_train_epochs=epochs,
        per_device_train_batch_size=batch_size,
        learning_rate=lr,
        lr_scheduler_type="constant",
        weight_decay=0.0,
        seed=seed,
        data_seed=seed,
        completion_only_loss=True,
        max_length=max_length,
        save_strategy="no",
        logging_strategy="no",
        report_to=[],
        disable_tqdm=True,
        use_cpu=base.device.type == "cpu",
        dataloader_num_workers=0,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=datasets.Dataset.from_list(examples),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    trained = trainer.model
    trained.save_pretrained(str(out_dir))
    return trained
