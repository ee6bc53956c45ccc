"""Measurement kit for tests and benchmarks (not installed with the service): labelled synthetic
corpora (`evaluation.synthetic`) and chance-adjusted agreement scores (`evaluation.quality`)."""
