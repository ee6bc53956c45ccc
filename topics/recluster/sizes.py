"""Batch sizes of the recluster's engine calls.

Every phase reads them from this module at call time (`sizes.SCROLL_BATCH`), so a test or a bench can
shrink them in one place for the whole job.
"""

SCROLL_BATCH = 256  # as fast as 1024 a point, and a quarter of the GIL held per engine call
WRITE_BUFFER = 65_536  # assignments held, then written grouped: one engine call per (topic, score)
WRITE_IDS = 256  # ids per grouped write: one engine call between two yields to searches
