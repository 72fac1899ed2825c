import sys

from synthgen.cli import main

sys.exit(main())
