"""``python -m fao.prober``"""

from fao.runtime.guard import block_stop_signals

block_stop_signals()  # first: threads a library starts at import must inherit the block

from fao.prober.app import build  # noqa: E402
from fao.runtime.service import run  # noqa: E402

run(build)
