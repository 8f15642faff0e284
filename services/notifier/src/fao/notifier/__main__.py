"""``python -m fao.notifier``"""

from fao.notifier.app import build
from fao.runtime.service import run

run(build)
