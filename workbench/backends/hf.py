"""Batched, length-bucketed generation on one (model, tokenizer) pair, with stop strings and a yes/no scorer.

Prompts are tokenised once, sorted by length so each batch holds neighbours (little padding),
generated with left padding in one ``model.generate`` call per batch, and returned in input order.
Greedy by default; sampling is seeded per batch so the same inputs give the same outputs.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..methods import prompts
from ..storage import sha256_file, stable_hash
from .adapters import load_adapter_model
from .base import GenerationError, GenResult, cut_at_stop
from .lazy import LazyWeights
from .models import Progress, check_weight_files, default_dtype, load_causal_lm, open_tokenizer
from .prefix_cache import MIN_PREFIX_TOKENS, PrefixCache, common_prefix_length, prefix_batch, reusable

if TYPE_CHECKING:
    from .answer_cache import AnswerCache


def _tail_contains(text: str, stops: Sequence[str]) -> bool:
    return any(s in text for s in stops)


class _StopOnStrings:
    """Stopping criterion: a row is done once its generated tail contains a stop string."""

    def __init__(self, tokenizer: Any, stops: Sequence[str], prompt_len: int):
        self.tok, self.stops, self.prompt_len = tokenizer, [s for s in stops if s], prompt_len
        self.window = max((len(s) for s in self.stops), default=1) + 3

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        tails = input_ids[:, max(self.prompt_len, input_ids.shape[1] - self.window) :].tolist()
        texts = self.tok.batch_decode(tails, skip_special_tokens=True)
        return torch.tensor([_tail_contains(t, self.stops) for t in texts], dtype=torch.bool, device=input_ids.device)


def _model_folder(model: Any) -> str:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return str(getattr(base, "name_or_path", "") or getattr(getattr(base, "config", None), "_name_or_path", "") or "")


def _folder_signature(folder: str) -> list[Any] | None:
    """Names, sizes and mtimes of a model folder's weight files: changes when the weights do."""
    path = Path(folder)
    if not path.is_dir():
        return None
    files = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".bin", ".json") and p.is_file())
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def _hash_tensors(named: Iterator[tuple[str, Any]]) -> str:
    import torch

    h = hashlib.sha256()
    for name, t in sorted(named, key=lambda kv: kv[0]):
        h.update(name.encode())
        h.update(t.detach().to("cpu").contiguous().view(-1).view(dtype=torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def adapter_hash(model: Any) -> str:
    """Content hash of a peft model's active adapter weights and config ("" for a plain model)."""
    if not hasattr(model, "peft_config"):
        return ""
    from peft import get_peft_model_state_dict

    name = getattr(model, "active_adapter", "default")
    state = get_peft_model_state_dict(model, adapter_name=name)
    cfg = model.peft_config[name].to_dict()
    return stable_hash(_hash_tensors(iter(state.items())), {k: v for k, v in cfg.items() if k != "base_model_name_or_path"})


class TokenizerChat:
    """Chat rendering and token arithmetic through a Hugging Face tokenizer (``self.tok``), shared by backends built on one."""

    tok: Any

    def render(self, messages: list[dict[str, str]], answer: str | None = None) -> str:
        """The chat as prompt text: the tokenizer's chat template, or a plain transcript for a base model."""
        return prompts.render(self.tok, messages, answer)

    def stop_strings(self) -> list[str]:
        """Stop strings for base models without a chat template (chat models stop at EOS)."""
        return prompts.stop_strings(self.tok)

    def text_tokens(self, text: str) -> int:
        """Tokens of plain text placed inside a prompt (no special tokens)."""
        return len(self.tok(text, add_special_tokens=False)["input_ids"])

    def truncate(self, text: str, max_tokens: int) -> str:
        """``text`` cut to its first ``max_tokens`` tokens."""
        return self.tok.decode(self.tok(text, add_special_tokens=False)["input_ids"][:max_tokens])


class HFGenerator(TokenizerChat):
    """The Hugging Face backend: batched generation on a causal LM (optionally a peft model carrying a LoRA adapter).

    ``model`` is a loaded model or a ``LazyWeights`` to load on first use (``from_name`` and ``with_adapter``
    give one): answers, judgements and the fingerprint served from caches never load the weights.
    """

    def __init__(self, model: Any, tokenizer: Any, name: str = "", adapter: str | Path | None = None, precision: str = ""):
        self._weights = model if isinstance(model, LazyWeights) else None
        self._model = None if self._weights is not None else model
        self.tok = tokenizer
        self.precision = precision  # "" (the weights as loaded) or a reduced precision of workbench.backends.quantize
        self.name = name or Path(self.folder).name or "model"
        self.adapter = str(adapter) if adapter else ""  # folder of the LoRA adapter the model carries, if any
        self.tok.padding_side = "left"
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        self._fingerprint: str | None = None
        self.reuse_prefix = True  # prefill a prompt prefix shared by a whole call once (prefix_cache)
        self.prefix_tokens_reused = 0  # prompt tokens not prefilled again thanks to it, over this generator's life
        self.judge_cache: AnswerCache | None = None  # when set, score_yes serves unchanged prompts from it
        self._eos_ids: set[int] | None = None
        probe = tokenizer("a")["input_ids"]
        self._add_bos = tokenizer.bos_token_id is not None and bool(probe) and probe[0] == tokenizer.bos_token_id

    @classmethod
    def from_name(cls, name_or_path: str, progress: Progress | None = None, device: str | None = None) -> HFGenerator:
        """A bundled model name, local HF folder or GGUF file (see models.open_tokenizer); the weights load on first use."""
        from .hardware import torch_device

        folder, tok = open_tokenizer(name_or_path, progress=progress)
        if folder.is_dir():
            check_weight_files(folder)
        dtype, device = default_dtype(), device or torch_device()
        weights = LazyWeights(str(folder), dtype, device, lambda: load_causal_lm(folder, tok, dtype, device))
        return cls(weights, tok, name=name_or_path)

    def with_adapter(self, adapter_dir: str | Path) -> HFGenerator:
        """A copy of the base model carrying the workbench-written adapter in ``adapter_dir`` (this one stays plain); loaded on first use."""
        adapter_dir = Path(adapter_dir)
        weights = LazyWeights(self.folder, self.dtype, str(self.device), lambda: load_adapter_model(self.model, adapter_dir))
        return HFGenerator(weights, self.tok, adapter=str(adapter_dir))

    @property
    def model(self) -> Any:
        """The model, loaded now if its weights were left for first use."""
        return self._model if self._weights is None else self._weights.get()

    @model.setter
    def model(self, value: Any) -> None:
        self._weights, self._model = None, value

    @property
    def weights_loaded(self) -> bool:
        """Whether the model is in memory (False while a lazily opened model has not been needed)."""
        return self._weights is None or self._weights.loaded

    @property
    def folder(self) -> str:
        """The base model's folder (or hub id), without loading it."""
        return self._weights.folder if self._weights is not None else _model_folder(self._model)

    @property
    def dtype(self) -> Any:
        """The number format of the weights, without loading them."""
        return self._weights.dtype if self._weights is not None else self._model.dtype

    @property
    def eos_ids(self) -> set[int]:
        """Token ids that end an answer: the model's generation config's EOS ids and the tokenizer's."""
        if self._eos_ids is None:
            eos = getattr(self.model.generation_config, "eos_token_id", None)
            eos = eos if isinstance(eos, list) else [eos]
            self._eos_ids = {int(e) for e in [*eos, self.tok.eos_token_id] if e is not None}
        return self._eos_ids

    @eos_ids.setter
    def eos_ids(self, value: set[int]) -> None:
        self._eos_ids = set(value)

    @property
    def tokenizer(self) -> Any:
        """The tokenizer (also available as ``tok``)."""
        return self.tok

    @property
    def device(self) -> Any:
        """Device of the model's weights (the one they will load on, while not loaded)."""
        import torch

        if self.weights_loaded:
            return next(self.model.parameters()).device
        device = torch.device(self._weights.device)
        return torch.device("cuda", torch.cuda.current_device()) if device.type == "cuda" and device.index is None else device

    @property
    def fingerprint(self) -> str:
        """Identity of the weights for caches: model folder (+ its files) and the adapter hash."""
        if self._fingerprint is None:
            folder = self.folder
            sig = _folder_signature(folder)
            if sig is None:  # built in memory or a hub id: hash the weights themselves
                sig = _hash_tensors(iter(self.model.named_parameters()))
            weights = Path(self.adapter) / "adapter_model.safetensors" if self.adapter else None
            if weights and weights.is_file():
                adapter = sha256_file(weights)
            else:  # a model opened by name carries no adapter until with_adapter gives it one
                adapter = "" if self._weights is not None and not self.adapter else adapter_hash(self.model)
            quantized = [self.precision] if self.precision else []  # left out at full precision: those keys stay as they were
            self._fingerprint = stable_hash(folder, sig, adapter, str(self.dtype), *quantized)
        return self._fingerprint

    def encode(self, prompts: Sequence[str]) -> list[list[int]]:
        """Token ids of rendered prompts (special tokens come from the template; BOS added if the tokenizer wants it)."""
        ids = self.tok(list(prompts), add_special_tokens=False)["input_ids"] if prompts else []
        if self._add_bos:
            bos = self.tok.bos_token_id
            ids = [x if x[:1] == [bos] else [bos, *x] for x in ids]
        return ids

    def count_tokens(self, text: str) -> int:
        """Length of a rendered prompt in tokens."""
        return len(self.encode([text])[0])

    def _batches(self, lengths: list[int], batch_size: int) -> list[list[int]]:
        order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))  # longest first: memory peak shows early
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]

    def _pad(self, seqs: list[list[int]]) -> tuple[Any, Any]:
        import torch

        width = max(len(s) for s in seqs)
        pad = self.tok.pad_token_id
        ids = torch.tensor([[pad] * (width - len(s)) + s for s in seqs], dtype=torch.long, device=self.device)
        mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs], dtype=torch.long, device=self.device)
        return ids, mask

    def _finish(self, row: list[int], stops: Sequence[str]) -> tuple[str, int]:
        """Decoded answer and its token count: cut at EOS, then at the earliest stop string."""
        end = next((i for i, t in enumerate(row) if t in self.eos_ids), len(row))
        row = row[:end]
        text = self.tok.decode(row, skip_special_tokens=True)
        text, stopped = cut_at_stop(text, stops)
        if stopped:  # count tokens up to the one that completed the stop string
            n = next(
                (i + 1 for i in range(len(row)) if _tail_contains(self.tok.decode(row[: i + 1], skip_special_tokens=True), stops)), end
            )
            return text.strip(), n
        return text.strip(), end

    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: int,
        temperature: float = 0.0,
        seed: int = 0,
        stop: Sequence[str] | None = None,
        batch_size: int = 16,
        progress: Progress | None = None,
        cache: AnswerCache | None = None,
    ) -> list[GenResult]:
        """Answers for rendered prompts, in input order; cached answers are served without running the model."""
        stops = [s for s in (stop or []) if s]
        if max_new_tokens < 1 or batch_size < 1:
            raise GenerationError("max_new_tokens and batch_size must be at least 1")
        results: list[GenResult | None] = [None] * len(prompts)
        keys = (
            [stable_hash(self.fingerprint, p, max_new_tokens, float(temperature), seed, stops) for p in prompts]
            if cache is not None
            else []
        )
        if cache is not None:
            for i, hit in enumerate(cache.get_many(keys)):
                results[i] = hit
        todo = [i for i, r in enumerate(results) if r is None]
        ids = self.encode([prompts[i] for i in todo])
        limit = getattr(self.model.config, "max_position_embeddings", None) if ids else None  # all cached: the weights stay unloaded
        for i, x in zip(todo, ids, strict=True):
            if not x:
                raise GenerationError(f"prompt {i} is empty; every question needs text")
            if limit and len(x) + max_new_tokens > limit:
                raise GenerationError(
                    f"prompt {i} has {len(x)} tokens, over the model's {limit}-token window with {max_new_tokens} new tokens; lower max_prompt_tokens or top_k"
                )
        done = len(prompts) - len(todo)
        if ids and self.device.type == "cuda":  # a GPU takes as many rows as its memory holds in KV cache
            batch_size = self._gpu_batch_size(batch_size, max(len(x) for x in ids) + max_new_tokens)
        if progress:
            progress(f"generating: {done}/{len(prompts)} cached", done / max(len(prompts), 1))
        prefix = self._shared_prefix(ids)
        for b, batch in enumerate(self._batches([len(x) for x in ids], batch_size)):
            t0 = time.perf_counter()
            rows = self._generate_batch([ids[j] for j in batch], max_new_tokens, temperature, seed + b, stops, prefix)
            finished = [self._finish(r, stops) for r in rows]
            wall = time.perf_counter() - t0
            fresh = []
            for j, (text, n_out) in zip(batch, finished, strict=True):
                res = GenResult(text, len(ids[j]), n_out, wall / len(batch), wall)
                results[todo[j]] = res
                fresh.append((keys[todo[j]], res) if cache is not None else None)
            if cache is not None:
                cache.put_many([f for f in fresh if f])
            done += len(batch)
            if progress:
                progress(f"generated {done}/{len(prompts)} answers", done / len(prompts))
        return [r for r in results if r is not None]

    def _shared_prefix(self, ids: list[list[int]]) -> PrefixCache | None:
        """The KV cache of the prompt prefix all ``ids`` share, when it is long enough and the model can reuse one."""
        if not self.reuse_prefix or len(ids) < 2 or not reusable(self.model):
            return None
        n = common_prefix_length(ids)
        if n < MIN_PREFIX_TOKENS:
            return None
        self.prefix_tokens_reused += n * (len(ids) - 1)
        return PrefixCache.build(self.model, ids[0][:n])

    def _gpu_batch_size(self, requested: int, tokens_per_row: int) -> int:
        from .hardware import fit_batch_size

        cfg = getattr(self.model, "config", None)
        layers = int(getattr(cfg, "num_hidden_layers", 0) or 0)
        heads = int(getattr(cfg, "num_attention_heads", 0) or 0)
        head_dim = int(getattr(cfg, "head_dim", 0) or (getattr(cfg, "hidden_size", 0) // max(heads, 1)))
        kv_width = 2 * int(getattr(cfg, "num_key_value_heads", 0) or heads) * head_dim
        if not layers or not kv_width:
            return requested
        return fit_batch_size(requested, "cuda", layers, kv_width, tokens_per_row, dtype_bytes=self.model.dtype.itemsize)

    def _generate_batch(
        self, seqs: list[list[int]], max_new_tokens: int, temperature: float, seed: int, stops: list[str], prefix: PrefixCache | None = None
    ) -> list[list[int]]:
        import torch

        kwargs: dict[str, Any] = {}
        if prefix is not None:
            rows, pad_mask = prefix_batch(prefix.ids, [s[len(prefix) :] for s in seqs], self.tok.pad_token_id)
            input_ids = torch.tensor(rows, dtype=torch.long, device=self.device)
            mask = torch.tensor(pad_mask, dtype=torch.long, device=self.device)
            kwargs["past_key_values"] = prefix.for_rows(len(seqs))
        else:
            input_ids, mask = self._pad(seqs)
        kwargs |= {
            "max_new_tokens": max_new_tokens,
            "pad_token_id": self.tok.pad_token_id,
            "eos_token_id": sorted(self.eos_ids),
        }
        if stops:
            kwargs["stopping_criteria"] = [_StopOnStrings(self.tok, stops, input_ids.shape[1])]
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=float(temperature), top_p=1.0, top_k=0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        devices = [input_ids.device] if input_ids.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.manual_seed(seed)
            out = self.model.generate(input_ids=input_ids, attention_mask=mask, use_cache=True, **kwargs)
        return out[:, input_ids.shape[1] :].tolist()

    def score_yes(self, prompts: Sequence[str], batch_size: int = 8) -> list[float]:
        """P(next token is "Yes") / (P("Yes") + P("No")) for each rendered prompt (a yes/no judge)."""
        import torch

        yes = self._single_ids(["Yes", " Yes"])
        no = self._single_ids(["No", " No"])
        if not yes or not no:
            raise GenerationError(f"{self.name}: tokenizer has no single-token 'Yes'/'No'; pick another judge model")
        out: list[float] = [0.0] * len(prompts)
        cache = self.judge_cache
        keys = [stable_hash(self.fingerprint, "score_yes", p) for p in prompts] if cache is not None else []
        hits = cache.get_many(keys) if cache is not None else [None] * len(prompts)
        for i, hit in enumerate(hits):
            if hit is not None:
                out[i] = float(hit.text)
        todo = [i for i, hit in enumerate(hits) if hit is None]
        ids = self.encode([prompts[i] for i in todo])
        for batch in self._batches([len(x) for x in ids], batch_size):
            t0 = time.perf_counter()
            input_ids, mask = self._pad([ids[j] for j in batch])
            with torch.inference_mode():
                logits = self.model(input_ids=input_ids, attention_mask=mask, logits_to_keep=1).logits[:, -1, :].float()
            probs = torch.softmax(logits, dim=-1)
            p_yes, p_no = probs[:, yes].sum(-1), probs[:, no].sum(-1)
            values = (p_yes / (p_yes + p_no).clamp_min(1e-12)).tolist()
            wall = time.perf_counter() - t0
            for j, v in zip(batch, values, strict=True):
                out[todo[j]] = float(v)
            if cache is not None:
                cache.put_many([(keys[todo[j]], GenResult(repr(float(v)), len(ids[j]), 0, wall / len(batch), wall)) for j, v in zip(batch, values, strict=True)])
        return out

    def _single_ids(self, words: list[str]) -> list[int]:
        found = []
        for w in words:
            t = self.tok(w, add_special_tokens=False)["input_ids"]
            if len(t) == 1 and t[0] not in found:
                found.append(t[0])
        return found
