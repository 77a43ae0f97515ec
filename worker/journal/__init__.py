"""The event journal: every event's history, written by the pipeline's own Redis scripts (see ``lua``)."""
