"""The Celery side: the app's configuration, the one task wrapper per event type, the outcome
policy and the handler registry."""
