"""The recluster job: `recluster` recomputes every item's topic and publishes the run with one switch.

`job.py` runs the phases in order (its docstring says what each does and what a kill -9 leaves);
each phase is a module here: `sample`, `match`, `assign`, `records`, `publish`, `cleanup`; `feed` is
the represent hook's protocol and `sizes` the engine call sizes.
"""

from topics.recluster.job import ReclusterError, RunReport, recluster

__all__ = ["ReclusterError", "RunReport", "recluster"]
