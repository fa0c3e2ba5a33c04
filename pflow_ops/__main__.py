import sys

from pflow_ops.launch import main

sys.exit(main())
