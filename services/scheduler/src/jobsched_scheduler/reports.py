"""Batches runner reports into few writes: while one flush is in flight, the next
batch gathers, so that a busy system writes many reports per transaction and an idle
one writes each report at once."""

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from . import metrics
from .model import AttemptKey, AttemptReport, Finish
from .ports import Store

log = logging.getLogger(__name__)

# How long to wait after a failed write before the reports are written again.
RETRY_PAUSE_SECONDS = 0.5


# Reports gather by attempt and by the runner that sent them: one runner's forged
# report never merges with, or stands in for, the report of the attempt's own runner.
Pending = tuple[AttemptKey, str | None]
# Told each finish (and who sent it) once the store has it or found it stale or refused.
FinishedCallback = Callable[[list[Pending]], None]


class ReportWriter:
    def __init__(self, store: Store, on_stored: FinishedCallback):
        self.store = store
        self.on_stored = on_stored
        self._pending: dict[Pending, AttemptReport] = {}
        self._ready = asyncio.Event()

    def _report(self, key: AttemptKey, runner_id: str | None) -> AttemptReport:
        report = self._pending.get((key, runner_id))
        if report is None:
            report = AttemptReport(key, runner_id=runner_id)
            self._pending[(key, runner_id)] = report
        self._ready.set()
        return report

    def started(self, key: AttemptKey, at: datetime, by: str | None = None) -> None:
        """`by`: the runner reporting; the store applies only reports of its own attempts
        (None: any runner's, for tests)."""
        self._report(key, by).started_at = at

    def output(
        self, key: AttemptKey, text: str, truncated: bool = False, by: str | None = None
    ) -> None:
        report = self._report(key, by)
        if text:
            report.output.append(text)
        report.truncated |= truncated

    def finished(self, key: AttemptKey, finish: Finish, by: str | None = None) -> None:
        self._report(key, by).finished = finish

    async def run(self, stop: asyncio.Event) -> None:
        """Flushes until stopped, then once more for what arrived last."""
        while not stop.is_set():
            waiter = asyncio.ensure_future(self._ready.wait())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            stopper.cancel()
            await self.flush()
        await self.flush()

    async def flush(self) -> None:
        self._ready.clear()
        if not self._pending:
            return
        batch, self._pending = self._pending, {}
        try:
            stored = await self.store.apply_reports(list(batch.values()))
        except Exception as exc:
            # Keep the reports (merged with any newer ones) and retry: nothing is lost.
            log.warning("Storing %d runner report(s) failed, will retry: %s", len(batch), exc)
            for key, report in batch.items():
                newer = self._pending.get(key)
                if newer is not None:
                    report.output.extend(newer.output)
                    report.truncated |= newer.truncated
                    report.finished = newer.finished or report.finished
                    report.started_at = report.started_at or newer.started_at
            self._pending = {**self._pending, **batch}
            await asyncio.sleep(RETRY_PAUSE_SECONDS)
            self._ready.set()
            return
        for refused in stored.refused:
            log.warning(
                "Job %d attempt %d: report from runner %s refused, the attempt is runner %s's",
                refused.key.job_id,
                refused.key.attempt,
                refused.runner_id,
                refused.holder,
                extra={"job_id": refused.key.job_id},
            )
        for end in stored.ended:
            metrics.JOBS_FINISHED.labels(end.status).inc()
            if end.waited is not None:
                metrics.ENQUEUE_TO_START.observe(end.waited)
            if end.ran is not None:
                metrics.DURATION.observe(end.ran)
        finished = [pending for pending, report in batch.items() if report.finished]
        if finished:
            self.on_stored(finished)
