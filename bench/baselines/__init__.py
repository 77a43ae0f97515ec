"""What a user would write by hand (naive) and the fastest sensible thing (ceiling), for side-by-side runs."""

# The bare Celery task of the task-overhead benchmark (bench.baselines.bare_tasks) and its queue.
BARE_TASK = "bench.bare"
BARE_QUEUE = "bare"
