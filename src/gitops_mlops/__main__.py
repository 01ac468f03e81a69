"""`python -m gitops_mlops` is the same as the `mlops` console script."""

import sys

from gitops_mlops.cli import main

sys.exit(main())
