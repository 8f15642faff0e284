"""``python -m fao.gateway``"""

from fao.gateway.app import build
from fao.runtime.service import run

run(build)
