"""Workers that fail are reported, never fatal.

Textual ends the app when a worker raises (`exit_on_error`). A maintainer
in the middle of a review should not lose the cockpit to an unexpected error
in a background read, so every worker is started with `exit_on_error=False`
and the node that ran it reports the failure as a notification. Expected
failures (refusals, unreadable repos) are `SluiceError`s, caught where they
happen; what reaches this is a bug, and says so.
"""
from __future__ import annotations

from textual.worker import Worker, WorkerState


class ReportsWorkerErrors:
    """Mixed into the app and the screens that run workers."""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            error = event.worker.error
            self.app.notify(f"{type(error).__name__}: {error}", severity="error", timeout=15,
                            title="internal error (a bug in sluice; the cockpit carries on)")
