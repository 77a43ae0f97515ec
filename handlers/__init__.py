"""Built-in handler plugins, one module per source. They know only ``worker.Event`` and ``@handler``."""
