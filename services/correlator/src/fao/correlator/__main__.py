"""``python -m fao.correlator``"""

from fao.correlator.app import build
from fao.runtime.service import run

run(build)
