"""Sequence-to-sequence tasks: paired corpora (G2P from the CMU Pronouncing Dictionary), models' data and metrics."""
