import sys

from tcp_lab.cli import main

sys.exit(main())
