"""``python -m rope_lib.doctor``: see :mod:`rope_lib.doctor.cli`."""

import sys

from .cli import main

sys.exit(main())
