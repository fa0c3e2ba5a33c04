import sys

from pflow_ops.receiver.service import main

sys.exit(main())
