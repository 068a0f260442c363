"""``python -m ironsafe``: the ``ironsafe`` command."""

import sys

from ironsafe._cli import main

if __name__ == "__main__":
    sys.exit(main())
