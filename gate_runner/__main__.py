"""`python -m gate_runner` is `gate`."""

from __future__ import annotations

import sys

from gate_runner.cli.main import main

sys.exit(main())
