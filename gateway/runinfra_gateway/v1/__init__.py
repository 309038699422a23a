"""The /v1 request path: router, scope and routing, charging, and one handler module per operation."""
