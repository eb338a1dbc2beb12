"""``python -m pipelines`` runs the ``stylerec`` command line."""

import sys

from pipelines.cli import main

sys.exit(main())
