"""Vouch broker: FIDO2-verified people delegate scoped Bedrock access to AI agents."""
