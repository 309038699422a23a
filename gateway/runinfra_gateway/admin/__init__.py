"""The admin API (``/admin/v1``) and the service layer the dashboard shares with it."""
