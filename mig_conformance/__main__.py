"""`python -m mig_conformance`."""

import sys

from mig_conformance.cli import main

sys.exit(main())
