"""Check-type plug-ins: one module per type, registered in ``registry``.

Adding a type: write ``checks/<type>.py`` with a class satisfying ``Checker`` and add one line to
``registry.BUILTIN_CHECKERS``.
"""

from fao.prober.checks.contract import Checker, Outcome
from fao.prober.checks.registry import BUILTIN_CHECKERS, CheckerRegistry

__all__ = ["BUILTIN_CHECKERS", "Checker", "CheckerRegistry", "Outcome"]
