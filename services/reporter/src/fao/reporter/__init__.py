"""Fao reporter: the monthly availability/incident report.

Pure domain modules (no I/O, no clock):

- `fao.runtime.thai` (shared with the notifier) — Thai month names, Buddhist-era years, the Thai fiscal year,
  `Month` ("YYYY-MM") and Thai date/time/duration formatting.
- `fao.reporter.availability` — `summarize(month, systems, facts, now) -> MonthlyReport`.
- `fao.reporter.render` — `render_html(report)` (Thai, executive-readable) and `render_json(report)`.
"""
