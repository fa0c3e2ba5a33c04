import sys

from pflow_ops.cli import main

sys.exit(main())
