"""``python -m asic_reservoir`` is the ``asic-reservoir`` command."""

import sys

from asic_reservoir.cli.main import main

sys.exit(main())
