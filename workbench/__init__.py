"""RAG-versus-fine-tuning decision workbench: the library (no UI imports)."""

import logging

__version__ = "0.1.0"

# transformers and peft import torchao (the int8 rows' library) when it is installed: its GPU-only kernels fail to
# load on this CPU build and torch notes its enum registrations; warning lines on every run, none of them actionable
for _noisy in ("torchao", "torch.utils._pytree"):
    logging.getLogger(_noisy).setLevel(logging.ERROR)
