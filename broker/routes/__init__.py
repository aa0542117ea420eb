"""HTTP controllers: thin, one service call per handler."""
