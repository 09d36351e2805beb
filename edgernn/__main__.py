import sys

from edgernn.cli import main

sys.exit(main())
