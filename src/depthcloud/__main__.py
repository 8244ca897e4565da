import sys

from depthcloud.cli import main

sys.exit(main())
