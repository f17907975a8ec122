"""`python -m worker`: run one task described by the environment (see worker/README.md)."""

import os
import sys

from worker.runner import main

if __name__ == "__main__":
    sys.exit(main(os.environ))
