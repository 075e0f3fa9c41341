"""Train the tiny model in a child process (used by the SIGKILL checkpoint/resume test).

usage: python tests/lora_train_helper.py BASE_DIR OUT_DIR SLEEP_SECONDS_PER_STEP
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from transformers import AutoTokenizer  # noqa: E402

from workbench.config import TrainConfig  # noqa: E402
from workbench.tuning.lora import train_adapter  # noqa: E402
from workbench.tuning.lora_data import build_training_data  # noqa: E402
from workbench.types import Corpus, Document, Question  # noqa: E402

CFG = TrainConfig(rank=4, alpha=8, max_steps=8, seq_len=64, batch_size=2, checkpoint_every=2, use_qa=False, learning_rate=1e-2)


def main() -> None:
    base, out, sleep = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    tok = AutoTokenizer.from_pretrained(base)
    corpus = Corpus(Path(out), [Document("a.md", "The Harrier controller runs at 400 Hz. " * 40)], [Question("q", "Q?", ["a"], split="test")])
    data = build_training_data(corpus, tok, CFG, seed=1)

    def on_progress(p: dict) -> None:
        print(f"step {p['step']}/{p['total_steps']} loss {p['loss']:.4f}", flush=True)
        time.sleep(sleep)

    adapter = train_adapter(base, data, CFG, out, seed=1, on_progress=on_progress)
    print(f"done {adapter}", flush=True)


if __name__ == "__main__":
    main()
