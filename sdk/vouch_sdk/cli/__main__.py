"""`python -m vouch_sdk.cli`, the same as the `vouch` script."""

import sys

from vouch_sdk.cli import main

sys.exit(main())
