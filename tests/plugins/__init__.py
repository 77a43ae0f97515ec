"""Handler plugins used by the integration tests, loaded by real workers via IMS_WORKER_HANDLER_MODULES."""
