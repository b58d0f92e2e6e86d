"""Authentication and authorization: passwords, tokens, sessions, API keys, roles and unit scope."""
