"""Fao reporter: the availability report executives sign (services/reporter/README.md).

Pure modules (no I/O, no clock): `fao.reporter.availability` (the figures: `summarize`),
`intervals`, `periods` (months and fiscal years), `schedule` (when a month is due), `localize`
(Thai/English wording and formatting; the Thai calendar is `fao.runtime.thai`), `summary` (the LINE
text). Outputs: `fao.reporter.formats` (one registry: HTML, PDF, XLSX, JSON) and `charts`. I/O at
the edge: `read_model`, `replay`, `archive`, `produce`, `line_push`, `app` (the service).
"""
