import sys

from polydistill.cli import main

sys.exit(main())
