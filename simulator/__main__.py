"""``python -m simulator`` is ``asic-reservoir sim``."""

import sys

from simulator.cli import main

if __name__ == "__main__":
    sys.exit(main())
