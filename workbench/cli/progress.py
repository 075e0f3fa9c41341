"""Progress display for long commands: one line per stage, redrawn in place on a terminal."""

from __future__ import annotations

import sys
import time
from typing import Any


class StageProgress:
    """One progress line per stage: redrawn in place on a terminal, throttled lines otherwise."""

    def __init__(self, stream: Any = sys.stderr):
        self.stream = stream
        self.tty = stream.isatty()
        self.stage = ""
        self.last = 0.0

    def __call__(self, stage: str, fraction: float, message: str) -> None:
        if message.startswith("warning:"):  # on a line of its own, never redrawn over
            self.stream.write(("\n" if self.tty and self.stage else "") + message + "\n")
            self.stream.flush()
            self.stage = ""
            return
        now = time.monotonic()
        new_stage = stage != self.stage
        if not (self.tty or new_stage or fraction >= 1.0 or now - self.last > 5):
            return
        if new_stage and self.stage and self.tty:
            self.stream.write("\n")
        self.stage, self.last = stage, now
        width = 24
        filled = int(width * max(0.0, min(1.0, fraction)))
        line = f"[{stage:<9}] |{'#' * filled}{'.' * (width - filled)}| {fraction * 100:5.1f}% {message[:80]}"
        self.stream.write(("\r" + line.ljust(130)) if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.stage:
            self.stream.write("\n")
