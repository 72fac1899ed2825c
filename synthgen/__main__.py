import sys

from synthgen.interface.cli import main

sys.exit(main())
