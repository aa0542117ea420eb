"""`python -m vouch_delegate.cli`, the same as the `vouch` script."""

import sys

from vouch_delegate.cli import main

sys.exit(main())
