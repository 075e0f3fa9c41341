"""Adapter fine-tuning with peft (LoRA, IA3, prompt tuning, p-tuning): a compact seeded training loop, crash-safe checkpoints, and a
content-addressed adapter cache.

Base weights stay bf16 and frozen; the adapter weights are fp32 (peft ``autocast_adapter_dtype``) so
small AdamW updates are not rounded away, and the forward runs under a bf16 autocast (without peft's fp32 copies of
each adapted layer's input: ``lean_lora``). The loss is
computed only at positions that carry a label, so masked prompt tokens cost no vocabulary projection, and a few
rows at a time (``chunked_loss``), so the labelled positions' logits are never all held at once.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..backends.adapters import LoraError
from ..backends.models import default_dtype, load_generator, resolve_generator, setup_threads
from ..config import SplitConfig, TrainConfig
from ..methods.registry import LORA_TUNER, PROMPT_TUNER, SOFT_PROMPT_TUNERS
from ..paths import cache_dir
from ..seeding import seed_everything
from ..storage import FolderLock, LockedError, atomic_write_json, atomic_write_jsonl, read_json, read_jsonl, sha256_file, stable_hash
from ..types import Corpus, Question
from .checkpoints import latest_checkpoint, restore_checkpoint, save_checkpoint, save_snapshot, snapshot_steps
from .leakage import DEFAULT_THRESHOLD, check_leakage
from .lora_data import PLAIN_PARTS, TrainingData, build_training_data, data_fingerprint
from .packing import IGNORE
from .specs import TUNER_ONLY_SETTINGS, peft_config, prompt_init_text

log = logging.getLogger("workbench.lora")
LORA_VERSION = 4  # 2: chunked cross-entropy (same loss, gradients rounded differently); 3: lean_lora (no input casts, another dropout stream); 4: in-place softmax buffers, 15-bit dropout masks; bump when the training recipe changes so cached adapters are not reused
WARMUP_FRACTION = 0.06  # share of steps with a linear warm-up
MIN_LR_RATIO = 0.1  # the cosine decays to this share of the peak learning rate
OnProgress = Callable[[dict[str, Any]], None]


def base_fingerprint(folder: str | Path) -> str:
    """Identity of a base model folder: its path, config.json hash and weight file sizes."""
    folder = Path(folder)
    config = folder / "config.json"
    weights = sorted((f.name, f.stat().st_size) for f in folder.glob("*.safetensors"))
    return stable_hash(str(folder.resolve()), sha256_file(config) if config.is_file() else "", weights)


def _lr_factor(step: int, total: int) -> float:
    """Linear warm-up then cosine decay to MIN_LR_RATIO (``step`` counts finished optimiser steps)."""
    warmup = max(1, round(WARMUP_FRACTION * total))
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return MIN_LR_RATIO + (1 - MIN_LR_RATIO) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def total_steps(n_blocks: int, cfg: TrainConfig) -> int:
    """Optimiser steps of a run: ``max_steps`` or ``epochs`` passes over the blocks."""
    if cfg.max_steps:
        return cfg.max_steps
    return max(1, math.ceil(cfg.epochs * n_blocks / (cfg.batch_size * cfg.grad_accum)))


def _order(n: int, seed: int, epoch: int) -> list[int]:
    import torch

    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).tolist()


def _batch_indices(position: int, count: int, n: int, seed: int, cache: dict[int, list[int]]) -> list[int]:
    """Blocks ``position .. position+count`` of the endless seeded stream (a new shuffle every epoch)."""
    out = []
    for k in range(position, position + count):
        epoch = k // n
        if epoch not in cache:
            cache.clear()
            cache[epoch] = _order(n, seed, epoch)
        out.append(cache[epoch][k % n])
    return out


def _trim_unlabelled_tail(ids: Any, labels: Any) -> tuple[Any, Any]:
    """The batch without the columns after its last labelled token: under causal attention no loss sees them (exact)."""
    labelled = (labels != IGNORE).any(dim=0).nonzero()
    end = int(labelled[-1]) + 1 if len(labelled) else labels.shape[1]
    return ids[:, :end], labels[:, :end]


def _loss(model: Any, input_ids: Any, labels: Any) -> Any:
    """Mean next-token cross-entropy over labelled positions, projecting only those hidden states.

    LoRA and IA3 live inside the base model's layers, so its decoder runs as it is. Prompt tuning lives in the peft
    model: its virtual tokens go before the block as ``PeftModelForCausalLM.forward`` puts them, and the last of
    them predicts the block's first token (the same loss as that forward, without projecting every position).
    """
    from .chunked_loss import projected_cross_entropy

    inner = model.get_base_model()
    if model.active_peft_config.is_prompt_learning:
        import torch

        embeds = model.word_embeddings(input_ids)
        virtual = model.get_prompt(batch_size=input_ids.shape[0]).to(embeds.dtype)
        n = virtual.shape[1]
        hidden = inner.get_decoder()(inputs_embeds=torch.cat((virtual, embeds), dim=1), use_cache=False).last_hidden_state[:, n - 1 : -1]
        targets = labels
    else:
        hidden = inner.get_decoder()(input_ids=input_ids, use_cache=False).last_hidden_state[:, :-1]
        targets = labels[:, 1:]
    keep = targets != IGNORE
    if not bool(keep.any()):
        return hidden.sum() * 0.0
    return projected_cross_entropy(hidden[keep], inner.get_output_embeddings(), targets[keep])


def _loss_summary(history: list[dict[str, Any]]) -> dict[str, Any]:
    losses = [h["loss"] for h in history]
    if not losses:
        return {}
    every = max(1, len(losses) // 100)
    return {"first": losses[0], "last": losses[-1], "min": min(losses), "mean_last_5": sum(losses[-5:]) / len(losses[-5:]), "curve": [[h["step"], round(h["loss"], 4)] for h in history[::every]]}


def train_adapter(
    base: str,
    data: TrainingData,
    cfg: TrainConfig,
    out_dir: str | Path,
    seed: int = 0,
    on_progress: OnProgress | None = None,
    record: dict[str, Any] | None = None,
    init_text: str = "",
) -> Path:
    """Train an adapter (``cfg.tuner``) on packed blocks; resumes from the last complete checkpoint in ``out_dir``.

    Returns ``out_dir/adapter`` (safetensors + adapter_config.json + workbench.json). ``record``
    (e.g. the leakage report) is stored in workbench.json; ``init_text`` is what a soft prompt starts as.
    """
    import torch
    from peft import get_peft_model

    from .lean_lora import streamline_lora_layers

    if not len(data):
        raise LoraError("no packed training blocks; the training data is empty")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    setup_threads()
    folder = resolve_generator(base)
    train_dtype = default_dtype("train")
    model, _tok = load_generator(str(folder), dtype=train_dtype)
    device = next(model.parameters()).device
    model.config.use_cache = False
    seed_everything(seed)
    n_layers = int(getattr(model.config, "num_hidden_layers", 0) or 0)
    layers = list(range(max(n_layers - cfg.top_layers, 0), n_layers)) if cfg.top_layers and n_layers else None
    try:
        model = get_peft_model(model, peft_config(cfg, layers, tokenizer=str(folder), init_text=init_text), autocast_adapter_dtype=True)
    except ValueError as exc:
        raise LoraError(f"{cfg.tuner} target_modules {cfg.target_modules} do not fit model {base}: {str(exc)[:160]}; pick module names of this model") from exc
    autocast_on = device.type in ("cpu", "cuda") and train_dtype != torch.float32
    streamline_lora_layers(model, autocast_on)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate, betas=(0.9, 0.999), weight_decay=0.0)
    steps = total_steps(len(data), cfg)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, steps))

    ids_all, labels_all = data.tensors()
    n = len(data)
    step, position, prior_s, prior_tokens, resumed = 0, 0, 0.0, 0, []
    log_path = out_dir / "train_log.jsonl"
    latest = latest_checkpoint(out_dir)
    if latest:
        state = restore_checkpoint(model, opt, sched, latest[1])
        step, position, prior_s, prior_tokens = state["step"], state["position"], state["elapsed_s"], state["tokens"]
        resumed = state.get("resumed_from", []) + [step]
        log.warning("resuming from step %d of %d (%s)", step, steps, latest[1])
    start_step = step
    history = [h for h in read_jsonl(log_path) if "loss" in h and h["step"] <= step]
    atomic_write_jsonl(log_path, history + ([{"event": "resume", "from_step": step}] if latest else []))
    autocast = torch.autocast(device.type, dtype=train_dtype, enabled=autocast_on)
    snapshot_at = snapshot_steps(steps, cfg.curve_points)
    order_cache: dict[int, list[int]] = {}
    t_loop, tokens = time.perf_counter(), 0
    with open(log_path, "a", encoding="utf-8") as log_fh:
        while step < steps:
            t0 = time.perf_counter()
            loss_sum = 0.0
            for _ in range(cfg.grad_accum):
                idx = _batch_indices(position, cfg.batch_size, n, seed, order_cache)
                position += cfg.batch_size
                x, y = _trim_unlabelled_tail(ids_all[idx], labels_all[idx])
                x, y = x.to(device), y.to(device)
                with autocast:
                    loss = _loss(model, x, y) / cfg.grad_accum
                loss.backward()
                loss_sum += float(loss.detach())
                tokens += x.numel()
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, 1.0))
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            elapsed = time.perf_counter() - t_loop
            tps = tokens / max(elapsed, 1e-9)
            row = {"step": step, "total_steps": steps, "loss": loss_sum, "lr": opt.param_groups[0]["lr"], "grad_norm": grad_norm, "tokens_per_s": tps, "eta_s": (steps - step) * elapsed / (step - start_step), "elapsed_s": prior_s + elapsed, "step_s": time.perf_counter() - t0}
            history.append(row)
            log_fh.write(json.dumps(row) + "\n")
            log_fh.flush()
            if on_progress:
                on_progress({k: row[k] for k in ("step", "total_steps", "loss", "tokens_per_s", "eta_s", "elapsed_s")})
            if step in snapshot_at:
                save_snapshot(model, out_dir, step)
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < steps:
                save_checkpoint(model, opt, sched, out_dir, {"step": step, "position": position, "elapsed_s": prior_s + elapsed, "tokens": prior_tokens + tokens, "resumed_from": resumed, "total_steps": steps})
    loop_s = time.perf_counter() - t_loop
    adapter = out_dir / "adapter"
    tmp = out_dir / ".adapter.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp), safe_serialization=True)
    info = {
        "workbench_lora_version": LORA_VERSION,
        "base": str(base),
        "base_folder": str(folder),
        "base_fingerprint": base_fingerprint(folder),
        "data_fingerprint": data.fingerprint,
        "data": data.stats,
        "train_cfg": asdict(cfg),
        "seed": seed,
        "steps": step,
        "loss": _loss_summary(history),
        "train_seconds": round(prior_s + loop_s, 3),
        "wall_seconds_last_session": round(time.perf_counter() - t_start, 3),
        "tokens_trained": prior_tokens + tokens,
        "tokens_per_s": round(tokens / max(loop_s, 1e-9), 2) if tokens else None,
        "resumed_from": resumed,
        "trainable_params": sum(p.numel() for p in params),
        "tuner": cfg.tuner,
        **({"init_text": init_text} if init_text else {}),
        "device": device.type,
        "dtype": str(train_dtype).replace("torch.", ""),
        "versions": _versions(),
        **(record or {}),
    }
    atomic_write_json(tmp / "workbench.json", info)
    shutil.rmtree(adapter, ignore_errors=True)
    os.replace(tmp, adapter)
    shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    return adapter


def _versions() -> dict[str, str]:
    import peft
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}


def adapter_key(base_folder: Path, data_fp: str, cfg: TrainConfig, seed: int, init_text: str = "") -> str:
    """Cache key of an adapter: base model, data, training settings (checkpointing aside), seed, a soft prompt's starting
    text and, when not bf16, the training dtype. Settings only another tuner reads are left out, so LoRA keys stay as
    they were before tuners."""
    settings = {k: v for k, v in asdict(cfg).items() if k != "checkpoint_every" and not (k == "tuner" and v == LORA_TUNER) and cfg.tuner in TUNER_ONLY_SETTINGS.get(k, (cfg.tuner,))}
    dtype = str(default_dtype("train")).replace("torch.", "")
    return stable_hash(LORA_VERSION, base_fingerprint(base_folder), data_fp, settings, seed, *([init_text] if init_text else []), *([dtype] if dtype != "bfloat16" else []))


@lru_cache(maxsize=4)
def _tokenizer(folder: str) -> Any:
    """The base model's tokenizer, loaded once per process (every adapter of a run keys its data with it)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder, trust_remote_code=False)


def _key_tokenizer(folder: Path, generator: Any) -> Any:
    """The tokenizer the data key is computed with: the loaded generator's when it is this base model (a cached
    adapter then needs no second tokenizer load, ~1 s), else the base folder's."""
    tok = getattr(generator, "tok", None)
    loaded_from = getattr(generator, "folder", None)  # known without loading the weights (HFGenerator)
    if loaded_from is None:
        model = getattr(generator, "model", None)
        loaded_from = getattr(getattr(model, "config", None), "_name_or_path", None) or getattr(model, "name_or_path", None)
    if tok is not None and loaded_from and Path(loaded_from).resolve() == Path(folder).resolve():
        return tok
    return _tokenizer(str(folder))


def get_or_train_adapter(
    base: str,
    corpus: Corpus,
    split_cfg: SplitConfig | None,
    cfg: TrainConfig,
    seed: int = 0,
    embedder: Any = None,
    on_progress: OnProgress | None = None,
    base_model: Any = None,
    generator: Any = None,
    on_data: Callable[[str, float], None] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """The adapter for (base, corpus data, cfg, seed): reused from the cache, resumed, or trained.

    Refuses (LeakageError) when a held-out (test split) question appears in the training data, also
    on a cache hit when the held-out set changed. Raises LockedError when another process is
    training the same adapter. ``base_model`` (already loaded) is reused for synthetic data.
    """
    folder = resolve_generator(base)
    data_fp = data_fingerprint(corpus, _key_tokenizer(folder, generator), cfg, split_cfg, seed)
    init_text = prompt_init_text(corpus.instruction, corpus.language) if cfg.tuner == PROMPT_TUNER else ""
    key = adapter_key(folder, data_fp, cfg, seed, init_text)
    out_dir = cache_dir("adapters") / key
    held_out = corpus.test
    if (out_dir / "adapter" / "workbench.json").is_file():
        return out_dir / "adapter", _cached_info(out_dir, key, held_out, embedder)
    lock = FolderLock(out_dir)
    try:
        lock.acquire()
    except LockedError:
        pid = (out_dir / ".lock").read_text().strip() if (out_dir / ".lock").is_file() else "?"
        raise LockedError(f"adapter {key} is being trained by another process (pid {pid}) in {out_dir}; wait for it to finish, then run again to reuse it") from None
    try:
        if (out_dir / "adapter" / "workbench.json").is_file():
            return out_dir / "adapter", _cached_info(out_dir, key, held_out, embedder)
        t0 = time.perf_counter()
        tok = _tokenizer(str(folder))
        if (out_dir / "data.pt").is_file() and (out_dir / "data.json").is_file():
            data = TrainingData.load(out_dir)
        else:
            model = None
            if (cfg.synthetic_qa or cfg.paraphrases or cfg.generated_qa or cfg.recipe == "raft") and generator is None:
                model = base_model if base_model is not None else load_generator(str(folder))[0]
            elif generator is not None and (cfg.synthetic_qa or cfg.paraphrases):  # the rest writes through the generator (cached answers load no weights)
                model = generator.model
            data = build_training_data(corpus, tok, cfg, split_cfg, seed, model=model, held_out=held_out, embedder=embedder, generator=generator, progress=on_data)
            del model
            data.save(out_dir)
        report = _leakage(data, held_out, embedder, out_dir)
        data_s = time.perf_counter() - t0
        adapter = train_adapter(base, data, cfg, out_dir, seed, on_progress, record={"key": key, "leakage": report, "data_seconds": round(data_s, 3)}, init_text=init_text)
        return adapter, _info(adapter, key, cache_hit=False)
    finally:
        lock.release()


def _held_out_hash(held_out: list[Question]) -> str:
    return stable_hash([(q.id, q.question, q.answers) for q in held_out])


def _leakage(data: TrainingData, held_out: list[Question], embedder: Any, out_dir: Path) -> dict[str, Any]:
    """Run the guard, save leakage.json next to the adapter, raise LeakageError on a leak."""
    plain = [t for t, m in zip(data.texts, data.meta, strict=True) if m.get("part") in PLAIN_PARTS]
    report = check_leakage(plain, held_out, embedder=embedder, threshold=DEFAULT_THRESHOLD, questions=data.questions, answers=data.answers)
    saved = {**report.to_dict(), "held_out_hash": _held_out_hash(held_out)}
    atomic_write_json(out_dir / "leakage.json", saved)
    report.raise_if_leaked()
    return saved


def _cached_info(out_dir: Path, key: str, held_out: list[Question], embedder: Any) -> dict[str, Any]:
    """Info of a finished adapter; re-checks leakage if the held-out questions changed since training."""
    info = _info(out_dir / "adapter", key, cache_hit=True)
    if info["leakage"].get("held_out_hash") != _held_out_hash(held_out) and (out_dir / "data.json").is_file():
        info["leakage"] = _leakage(TrainingData.load(out_dir), held_out, embedder, out_dir)
    return info


def _info(adapter_dir: Path, key: str, cache_hit: bool) -> dict[str, Any]:
    info = train_info(adapter_dir)
    return {**info, "cache_hit": cache_hit, "key": key, "adapter_dir": str(adapter_dir)}


def train_info(adapter_dir: str | Path) -> dict[str, Any]:
    """What a finished adapter records: train_seconds, tokens_per_s, loss, steps, data stats, leakage, size."""
    adapter_dir = Path(adapter_dir)
    meta = read_json(adapter_dir / "workbench.json")
    if meta is None:
        raise LoraError(f"{adapter_dir}: no workbench.json; not an adapter written by this workbench")
    loss = meta.get("loss", {})
    size = sum(f.stat().st_size for f in adapter_dir.iterdir() if f.is_file())
    data = meta.get("data", {})
    train_cfg = meta.get("train_cfg") or {}
    return {
        **token_shares(data),
        "train_seconds": meta.get("train_seconds", 0.0),
        "tokens_per_s": meta.get("tokens_per_s"),
        "steps": meta.get("steps", 0),
        "loss_first": loss.get("first"),
        "final_loss": loss.get("last"),
        "loss_curve": loss.get("curve", []),
        "data": data,
        "leakage": meta.get("leakage", {}),
        "resumed_from": meta.get("resumed_from", []),
        "seed": meta.get("seed"),
        "artifact_mb": round(size / 1e6, 2),
        "trainable_params": meta.get("trainable_params"),
        "tuner": meta.get("tuner") or train_cfg.get("tuner") or LORA_TUNER,
        "learning_rate": train_cfg.get("learning_rate"),
        **({"virtual_tokens": train_cfg.get("virtual_tokens")} if train_cfg.get("tuner") in SOFT_PROMPT_TUNERS else {}),
    }


def token_shares(stats: dict[str, Any]) -> dict[str, float | None]:
    """Shares of the packed (trained) tokens that carry a loss label and that are filler (gap or top-up, no label)."""
    total = stats.get("n_tokens") or 0
    if not total:
        return {"labelled_token_share": None, "filler_token_share": None}
    return {"labelled_token_share": round(stats.get("n_trained_tokens", 0) / total, 4), "filler_token_share": round(stats.get("filler_tokens", 0) / total, 4)}

