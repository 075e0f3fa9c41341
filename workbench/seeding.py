"""One seed for every random number generator the workbench uses (Python, NumPy, torch)."""

from __future__ import annotations

import random


def seed_everything(seed: int) -> None:
    """Seed ``random``, NumPy and torch (CPU and every GPU) with ``seed``."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
