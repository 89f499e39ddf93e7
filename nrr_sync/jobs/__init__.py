"""The job: a run's envelope (``run``), the backfill and the incremental sync engines,
what they share (``context``) and their checkpoints (``state``)."""
