"""Development tooling: runs from a source checkout, never ships in the vouch-broker wheel.

`vouch-broker dev` (dev.py) and `vouch-broker demo` (demo.py) start a local redis-server and
the moto AWS emulator and drive the `vouch` CLI; config_reference.py writes
docs/configuration.md (`make docs`). Their extra dependencies (moto, vouch-delegate) are the
project's dev dependency group, which `uv sync` installs; `vouch-broker` imports this package
only for those two commands and names the checkout when it is missing.
"""
