"""What the analysis monitors share: forward hooks held while the monitor is open."""

from __future__ import annotations

from typing import Any

__all__ = ["HookedMonitor"]


class HookedMonitor:
    """Base of a monitor used as ``with Monitor(model) as m: model(x)``.

    Subclasses register their hooks in ``__enter__`` and keep the handles in ``_handles``; leaving the
    ``with`` block, or :meth:`close`, removes them (the statistics stay available).
    """

    _handles: list[Any]

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove the hooks (the statistics stay available)."""
        for h in self._handles:
            h.remove()
        self._handles.clear()
