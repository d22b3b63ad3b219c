"""`python -m charrnn` runs the command line (torchrun -m charrnn too)."""

import sys

from charrnn.cli import main

sys.exit(main())
