"""``python -m fao.prober``"""

from fao.prober.app import build
from fao.runtime.service import run

run(build)
