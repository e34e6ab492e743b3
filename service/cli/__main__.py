"""``python -m service.cli``: the ``stlsnn`` console script without installing the package."""

import sys

from service.cli.main import main

sys.exit(main())
