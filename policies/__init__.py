"""Pure policy library: model catalog, org policy, session-policy compiler, IAM evaluator."""
