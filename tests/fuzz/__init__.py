"""Schema-driven fuzzing of the broker's HTTP API (schemathesis); see README.md here."""
