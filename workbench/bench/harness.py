"""Performance harness: each figure measured against its plain-library reference, in one process, one run.

``python -m workbench bench [--quick] --out FILE`` writes ``{"figures", "targets", "met", "raw",
"machine", "versions", "settings", "quick", "profile", "errors"}`` and a scaling plot next to FILE.
Sections run in order (generation, LoRA, waste removed, embedding, retrieval, runs); a failing section is recorded
in ``errors`` and the others still run. The JSON is rewritten after every section.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..backends.models import DEFAULT_EMBEDDER, DEFAULT_GENERATOR
from ..config import PRESETS
from ..paths import repo_root
from ..storage import atomic_write_json, atomic_write_text
from .report import TARGETS, finite, markdown_report

SECTIONS = ("generation", "lora", "waste", "embedding", "retrieval", "runs")


@dataclass
class BenchSettings:
    """What the harness measures and at what size; saved in the JSON."""

    quick: bool = False
    model: str = DEFAULT_GENERATOR
    embedder: str = DEFAULT_EMBEDDER
    corpus: str = field(default_factory=lambda: str(repo_root() / "corpora" / "kestrel_labs"))
    chunk_corpora: list[str] = field(default_factory=lambda: [str(repo_root() / "corpora" / n) for n in ("kestrel_labs", "ticket_triage")])
    n_prompts: int = 50  # evaluation prompts (held-out questions), answered both ways
    prompt_kinds: list[str] = field(default_factory=lambda: ["zero-shot", "few-shot", "rag", "zero-shot", "rag"])  # the five methods' prompts
    max_new_tokens: int = PRESETS["quick"]["generation"]["max_new_tokens"]
    gen_batch_size: int = PRESETS["quick"]["generation"]["batch_size"]
    eval_scaling: list[int] = field(default_factory=lambda: [10, 25])  # + n_prompts
    prefill_rows: int = 4  # RAG prompts in the prefill roofline batch
    decode_steps: int = 16  # decode steps timed per batch size (1 and gen_batch_size) for the bandwidth figure
    lora_steps: int = 4  # per path; the first is warm-up
    lora_batch: int = 4  # the 4x256 step of the plain-peft reference (all layers, like for like)
    lora_seq_len: int = PRESETS["quick"]["train"]["seq_len"]
    lora_rank: int = 16
    n_writer_prompts: int = 32  # the fact writer's prompts in the shared-prefix before/after
    n_embed_texts: int = 2000
    embed_reps: int = 2
    index_scaling: list[int] = field(default_factory=lambda: [250, 500, 1000])
    retrieval_sizes: list[int] = field(default_factory=lambda: [10_000, 100_000])
    retrieval_types: dict[str, list[str]] = field(default_factory=lambda: {"10k": ["flat", "hnsw", "ivf"], "100k": ["flat", "hnsw", "ivf"]})
    keyword_at: int = 10_000
    n_queries: int = 200
    run_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # over the quick preset
    run_methods: list[str] | None = None
    profile: str = "misses"  # "misses" | "always" | "never"
    sections: list[str] = field(default_factory=lambda: list(SECTIONS))
    shrunk: dict[str, str] = field(default_factory=dict)  # what --quick made smaller, and to what

    @classmethod
    def for_mode(cls, quick: bool) -> BenchSettings:
        """Full settings, or the --quick ones with every reduction recorded in ``shrunk``."""
        if not quick:
            return cls()
        s = cls(quick=True, n_prompts=15, eval_scaling=[5], lora_steps=3, n_writer_prompts=16, n_embed_texts=500, embed_reps=2, index_scaling=[125, 250], n_queries=100)
        s.retrieval_types = {"10k": ["flat", "hnsw", "ivf"], "100k": ["flat", "ivf"]}
        s.run_overrides = {"eval": {"max_questions": 10}, "train": {"max_steps": 4}}
        preset = PRESETS["quick"]
        s.shrunk = {
            "n_prompts": "50 -> 15 (same 2:1:2 mix of zero-shot, few-shot and RAG prompts)",
            "eval_scaling": "[10, 25, 50] -> [5, 15]",
            "lora_steps": "4 -> 3 per path",
            "n_writer_prompts": "32 -> 16",
            "n_embed_texts": "2000 -> 500",
            "index_scaling": "[250, 500, 1000] -> [125, 250]",
            "retrieval_types": "100k: flat, hnsw, ivf -> flat, ivf (HNSW build at 100k skipped)",
            "n_queries": "200 -> 100",
            "runs": f"quick preset with eval.max_questions {preset['eval']['max_questions']} -> 10 and train.max_steps {preset['train']['max_steps']} -> 4",
        }
        return s


def _met(name: str, value: Any) -> bool | None:
    if not finite(value):
        return None
    op, threshold, _ = TARGETS[name]
    return value >= threshold if op == ">=" else value < threshold


def machine_info() -> dict[str, Any]:
    """CPU model, cores, memory, threads and load: what the numbers were measured on."""
    import platform

    import psutil
    import torch

    cpu = ""
    try:
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "")
    except OSError:
        pass
    return {
        "cpu": cpu or platform.processor(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "torch_threads": torch.get_num_threads(),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "platform": platform.platform(),
        "load_avg_start": list(os.getloadavg()),
    }


def versions_info() -> dict[str, Any]:
    """Package versions and git revision."""
    from ..pipeline.runstore import git_revision, versions

    out = versions()
    for name in ("faiss-cpu", "bm25s", "numpy", "sentence-transformers", "peft", "transformers", "torch"):
        if name not in out:
            try:
                from importlib.metadata import version

                out[name] = version(name)
            except Exception:  # noqa: BLE001 - a missing package is just reported missing
                out[name] = "missing"
    out["git_revision"] = git_revision()
    return out


class Bench:
    """Runs the sections, keeps the results, writes the JSON after each section."""

    def __init__(self, settings: BenchSettings, out: str | Path, log: Any = sys.stderr):
        self.s, self.out, self.log = settings, Path(out), log
        self.raw: dict[str, Any] = {}
        self.figures: dict[str, Any] = {}
        self.profile: list[dict[str, Any]] = []
        self.errors: dict[str, str] = {}
        self.t0 = time.perf_counter()
        self.machine, self.versions = machine_info(), versions_info()
        self._gen: Any = None
        self._embedder: Any = None
        self._prompts: dict[str, list[str]] = {}
        self._limits: dict[str, dict[str, Any]] = {}

    def say(self, msg: str) -> None:
        self.log.write(f"[bench {time.perf_counter() - self.t0:7.1f}s] {msg}\n")
        self.log.flush()

    # ------------------------------------------------------------ sections
    def embedder(self) -> Any:
        if self._embedder is None:
            from ..retrieval.embedding import Embedder

            self._embedder = Embedder(self.s.embedder)
        return self._embedder

    def generation(self) -> None:
        from ..backends.loader import open_generator
        from .generation import bench_generation, build_prompts

        self._gen = open_generator(self.s.model)
        self._prompts, info = build_prompts(self.s.corpus, self._gen, self.embedder(), self.s.n_prompts, tuple(self.s.prompt_kinds))
        res = bench_generation(self._gen, self._prompts, self.s.max_new_tokens, self.s.gen_batch_size, self.s.eval_scaling)
        self.raw["generation"] = {"prompts": info, **res}
        self.figures["batched_vs_single_speedup"] = res["speedup"]
        self.figures["batched_vs_single_speedup_by_kind"] = {k: v["speedup"] for k, v in res["by_kind"].items()}
        self.figures["batched_vs_single_agreement"] = res["agreement"]
        self.say(f"generation: ours {res['ours_answers_per_s']:.2f} answers/s, plain {res['plain_answers_per_s']:.2f} -> x{res['speedup']:.2f}, agreement {res['agreement']:.0%}; by kind {self.figures['batched_vs_single_speedup_by_kind']}")
        self.generation_roofline()

    def limits(self, config: Any, dtype: Any) -> dict[str, Any]:
        """This machine's matrix-multiply peak (model's projection shapes, ``dtype``) and copy bandwidth, measured once per dtype."""
        from .roofline import Dims, copy_bandwidth, matmul_peak

        key = str(dtype).replace("torch.", "")
        if key not in self._limits:
            self.say(f"limits: matrix-multiply peak in {key} on the model's projection shapes, copy bandwidth")
            self._limits[key] = {**matmul_peak(Dims.from_config(config), dtype), "copy": copy_bandwidth()}
            self.raw.setdefault("limits", {})[key] = self._limits[key]
        return self._limits[key]

    def generation_roofline(self) -> None:
        """Prefill FLOP/s and decode weight-bytes/s of the generator against this machine's limits."""
        from .roofline import decode_roofline, prefill_roofline

        gen = self._gen
        lim = self.limits(gen.model.config, gen.model.dtype)
        rag = self._prompts.get("rag") or max(self._prompts.values(), key=lambda g: max(map(len, g)))
        short = min((p for g in self._prompts.values() for p in g), key=len)
        pre = prefill_roofline(gen, rag, self.s.prefill_rows, lim["peak_flops"])
        dec = decode_roofline(gen, short, self.s.decode_steps, tuple(sorted({1, self.s.gen_batch_size})), lim["copy"]["bytes_per_s"])
        self.raw["roofline"] = {"peak_flops": lim["peak_flops"], "dtype": lim["dtype"], "copy_bytes_per_s": lim["copy"]["bytes_per_s"], "prefill": pre, "decode": dec}
        self.figures["prefill_roofline_fraction"] = pre["batch"]["roofline_fraction"]
        self.figures["prefill_roofline_fraction_single"] = pre["single"]["roofline_fraction"]
        self.figures["decode_bandwidth_fraction"] = dec["batch_1"]["bandwidth_fraction"]
        self.figures["decode_tokens_per_s"] = {k.removeprefix("batch_"): v["tokens_per_s"] for k, v in dec.items() if k.startswith("batch_")}
        self.say(f"roofline: peak {lim['peak_flops'] / 1e9:.0f} GFLOP/s {lim['dtype']}, copy {lim['copy']['bytes_per_s'] / 1e9:.1f} GB/s; prefill {pre['batch']['flops_per_s'] / 1e9:.0f} GFLOP/s = {pre['batch']['roofline_fraction']:.2f} of peak; "
                 f"decode {dec['batch_1']['tokens_per_s']:.1f} tokens/s = {dec['batch_1']['bandwidth_fraction']:.2f} of copy bandwidth")

    def lora(self) -> None:
        from .train import bench_lora

        res = bench_lora(self.s.model, self.s.corpus, self._train_cfg())
        self.raw["lora"] = res
        self.figures["lora_vs_plain_ratio"] = res["ratio"]
        self.figures["lora_labelled_token_share"] = res["labelled_token_share"]
        self.figures["lora_filler_token_share"] = res["filler_token_share"]
        self.say(f"lora: ours {res['ours']['tokens_per_s']:.0f} tok/s, plain {res['plain']['tokens_per_s']:.0f} tok/s -> x{res['ratio']:.2f}; labelled {res['labelled_token_share']:.1%}, filler {res['filler_token_share']:.1%} of packed tokens")
        self.train_roofline(res)

    def train_roofline(self, res: dict[str, Any]) -> None:
        """FLOP/s of our LoRA steps over the matrix-multiply peak in the training dtype."""
        from transformers import AutoConfig

        from ..backends.models import default_dtype, resolve_generator
        from .roofline import train_roofline

        folder = str(resolve_generator(self.s.model))
        cfg = self._train_cfg()
        lim = self.limits(AutoConfig.from_pretrained(folder, trust_remote_code=False), default_dtype("train"))
        tr = train_roofline(folder, res["ours"]["tokens_per_s"], cfg.seq_len, res["labelled_token_share"] or 0.0, cfg.top_layers, cfg.rank, list(cfg.target_modules), lim["peak_flops"])
        self.raw["lora"]["roofline"] = {**tr, "peak_flops": lim["peak_flops"], "dtype": lim["dtype"]}
        self.figures["train_roofline_fraction"] = tr["roofline_fraction"]
        self.say(f"train roofline: {tr['flops_per_s'] / 1e9:.0f} GFLOP/s = {tr['roofline_fraction']:.2f} of the {lim['dtype']} peak {lim['peak_flops'] / 1e9:.0f} GFLOP/s")

    def _train_cfg(self) -> Any:
        from ..config import TrainConfig

        return TrainConfig(max_steps=self.s.lora_steps, batch_size=self.s.lora_batch, seq_len=self.s.lora_seq_len, rank=self.s.lora_rank, alpha=2 * self.s.lora_rank, checkpoint_every=0)

    def waste(self) -> None:
        """Each removed piece of needless work, before and after on the same inputs (``waste``)."""
        from ..backends.loader import open_generator
        from .generation import build_prompts
        from .train import lora_examples
        from .waste import packing, prefix_reuse, writer_prompts

        if self._gen is None:
            self._gen = open_generator(self.s.model)
        if not self._prompts:
            self._prompts, _ = build_prompts(self.s.corpus, self._gen, self.embedder(), self.s.n_prompts, tuple(self.s.prompt_kinds))
        grouped = {**self._prompts, "fact writer": writer_prompts(self.s.corpus, self._gen, self.s.n_writer_prompts)}
        pre = prefix_reuse(self._gen, grouped, self.s.max_new_tokens, self.s.gen_batch_size, stops={"fact writer": ["\n"]})
        examples = lora_examples(self.s.corpus, self._gen.tok, self.s.lora_seq_len)
        packs = {"documents and train Q/A": packing(examples, self.s.lora_seq_len), "Q/A only": packing([e for e in examples if not e.splittable], self.s.lora_seq_len)}
        self.raw["waste"] = {"prefix_reuse": pre, "packing": packs}
        self.figures["prefix_reuse_speedup"] = pre["speedup"]
        self.figures["prefix_reuse_speedup_by_kind"] = {k: v["speedup"] for k, v in pre["by_kind"].items()}
        self.figures["prefix_reuse_same_answers"] = pre["same_answers"]
        self.figures["packing_filler_share"] = {k: {"before": v["before"]["filler_share"], "after": v["after"]["filler_share"]} for k, v in packs.items()}
        self.say(f"waste: shared prefix x{pre['speedup']:.2f} ({ {k: round(v, 2) for k, v in self.figures['prefix_reuse_speedup_by_kind'].items()} }), same answers {pre['same_answers']:.0%}; packing filler {self.figures['packing_filler_share']}")

    def embedding(self) -> None:
        from .index import bench_embedding, bench_index_scaling, real_chunks

        chunks = real_chunks(self.s.chunk_corpora, self.s.n_embed_texts)
        res = bench_embedding(self.embedder(), [c.text for c in chunks], reps=self.s.embed_reps)
        res["index_scaling"] = bench_index_scaling(self.embedder(), chunks, self.s.index_scaling)
        self.raw["embedding"] = res
        self.figures["embed_vs_raw_ratio"] = res["ratio"]
        self.say(f"embedding: ours {res['ours_texts_per_s']:.0f} texts/s, raw {res['raw_texts_per_s']:.0f} -> x{res['ratio']:.3f}")

    def retrieval(self) -> None:
        from ..corpus.load import load_corpus
        from .index import bench_retrieval, label, real_chunks

        texts = [c.text for c in real_chunks(self.s.chunk_corpora, 2000)]
        questions = [q.question for q in load_corpus(self.s.corpus).questions]
        types_at = {n: self.s.retrieval_types.get(label(n), ["flat"]) for n in self.s.retrieval_sizes}
        res = bench_retrieval(self.embedder(), texts, questions, self.s.retrieval_sizes, types_at, self.s.keyword_at, self.s.n_queries)
        self.raw["retrieval"] = res
        excl: dict[str, dict[str, float]] = {}
        incl: dict[str, dict[str, float]] = {}
        for size, row in res["sizes"].items():
            for kind, m in row.items():
                if isinstance(m, dict) and "p50_ms" in m:
                    excl.setdefault(size, {})[kind] = m["p50_ms"]
                    incl.setdefault(size, {})[kind] = m["incl_embedding"]["p50_ms"]
        largest = label(max(self.s.retrieval_sizes))
        dense = {k: v for k, v in excl[largest].items() if k in ("flat", "hnsw", "ivf")}
        best = min(dense, key=lambda k: dense[k])
        self.figures["retrieval_p50_ms"] = excl
        self.figures["retrieval_p50_ms_incl_embedding"] = incl
        self.figures["retrieval_p50_ms_best"] = dense[best]
        self.raw["retrieval"]["best"] = {"size": largest, "index": best}
        self.say(f"retrieval: p50 ms {excl}; best at {largest}: {best} {dense[best]:.3f} ms")

    def runs(self) -> None:
        from .runs import bench_runs

        res = bench_runs(self.s.corpus, self.s.model, self.s.run_overrides, self.s.run_methods)
        self.raw["runs"] = res
        self.figures["cold_quick_s"] = res["cold"]["wall_s"]
        self.figures["warm_rerun_s"] = res["warm"]["wall_s"]
        self.say(f"runs: cold {res['cold']['wall_s']:.1f}s {res['cold']['stages_s']}, warm {res['warm']['wall_s']:.1f}s {res['warm']['stages_s']}")

    # ------------------------------------------------------------ profiles
    def profiles(self, met: dict[str, bool | None]) -> None:
        """Profile what limits each missed target (or every one with profile='always')."""
        from .generation import profile_generation
        from .profile import python_top_calls
        from .train import profile_training

        want = {k for k, v in met.items() if v is False} if self.s.profile == "misses" else set(TARGETS) if self.s.profile == "always" else set()
        jobs = {
            "batched_vs_single_speedup": lambda: profile_generation(self._gen, self._prompts.get("rag") or next(iter(self._prompts.values())), self.s.max_new_tokens, self.s.gen_batch_size),
            "lora_vs_plain_ratio": lambda: profile_training(self.s.model, self.s.corpus, self._train_cfg()),
            "embed_vs_raw_ratio": lambda: {"what": "Embedder.encode on 256 chunks (cProfile)", "top_calls": python_top_calls(lambda: self.embedder().encode(self._some_texts(256)))},
        }
        for name in sorted(want):
            if name in jobs and (name != "batched_vs_single_speedup" or self._prompts):
                self.say(f"profiling {name}")
                try:
                    self.profile.append({"figure": name, **jobs[name]()})
                except Exception as exc:  # noqa: BLE001 - a profile is extra information
                    self.profile.append({"figure": name, "error": f"{type(exc).__name__}: {exc}"})
            elif name in ("cold_quick_s", "warm_rerun_s") and "runs" in self.raw:
                which = "cold" if name == "cold_quick_s" else "warm"
                stages = self.raw["runs"][which]["stages_s"]
                total = sum(stages.values()) or 1.0
                self.profile.append({"figure": name, "what": f"{which} run: seconds per pipeline stage (run.py timings)", "stages": sorted(({"stage": k, "s": v, "share": round(v / total, 3)} for k, v in stages.items()), key=lambda r: -r["s"])})

    def _some_texts(self, n: int) -> list[str]:
        from .index import real_chunks

        return [c.text for c in real_chunks(self.s.chunk_corpora, n)]

    # ------------------------------------------------------------ output
    def result(self, complete: bool) -> dict[str, Any]:
        met = {name: _met(name, self.figures.get(name)) for name in TARGETS}
        return {
            "figures": self.figures,
            "targets": {k: {"op": op, "value": v, "meaning": m} for k, (op, v, m) in TARGETS.items()},
            "met": met,
            "raw": self.raw,
            "profile": self.profile,
            "errors": self.errors,
            "machine": {**self.machine, "load_avg_end": list(os.getloadavg())},
            "versions": self.versions,
            "settings": dataclasses.asdict(self.s),
            "quick": self.s.quick,
            "complete": complete,
            "total_s": time.perf_counter() - self.t0,
            "written": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        }

    def write(self, complete: bool = False) -> dict[str, Any]:
        result = self.result(complete)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.out, result)
        return result

    def run(self) -> dict[str, Any]:
        for name in self.s.sections:
            self.say(f"section {name}")
            t0 = time.perf_counter()
            try:
                getattr(self, name)()
            except Exception as exc:  # noqa: BLE001 - record and go on with the other sections
                self.errors[name] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
                self.raw.setdefault("tracebacks", {})[name] = traceback.format_exc()[-3000:]
                self.say(f"section {name} FAILED: {self.errors[name]}")
            self.raw.setdefault("section_s", {})[name] = time.perf_counter() - t0
            self.write()
        self.profiles(self.result(False)["met"])
        try:
            from .plot import scaling_rows, write_plots

            if any(scaling_rows(self.raw)):  # sections such as lora or waste alone have nothing to plot
                self.raw["plots"] = write_plots(self.raw, self.out)
        except Exception as exc:  # noqa: BLE001 - the JSON matters more than the picture
            self.errors["plot"] = f"{type(exc).__name__}: {exc}"
        return self.write(complete=True)


def run_bench(settings: BenchSettings, out: str | Path, log: Any = sys.stderr) -> dict[str, Any]:
    """Run every section of ``settings`` and write the JSON (and plots) to ``out``; returns the result."""
    from ..backends.models import setup_threads

    setup_threads()
    return Bench(settings, out, log).run()


def main(quick: bool, out: str, sections: str | None = None) -> int:
    """CLI entry: run the harness (all sections, or the comma-separated ``sections``), print the table, exit 1 when a section failed."""
    settings = BenchSettings.for_mode(quick)
    if sections:
        chosen = [x.strip() for x in sections.split(",") if x.strip()]
        unknown = [x for x in chosen if x not in SECTIONS]
        if unknown or not chosen:
            raise SystemExit(f"error: bench --sections {sections!r}: unknown section {', '.join(unknown) or '(none given)'}; use a comma-separated subset of {','.join(SECTIONS)}")
        settings.sections = chosen
    result = run_bench(settings, out)
    report = markdown_report(result)
    atomic_write_text(Path(out).with_suffix(".md"), report + "\n")
    print(report)
    for name, err in result["errors"].items():
        print(f"section {name} failed: {err}", file=sys.stderr)
    print(out)
    return 1 if result["errors"] else 0
