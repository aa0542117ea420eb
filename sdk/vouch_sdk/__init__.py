"""Agent SDK and CLI for the Vouch delegation broker."""
