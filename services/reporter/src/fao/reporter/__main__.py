"""``python -m fao.reporter``"""

from fao.reporter.app import build
from fao.runtime.service import run

run(build)
