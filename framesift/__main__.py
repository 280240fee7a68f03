import sys

from framesift.cli import main

sys.exit(main())
