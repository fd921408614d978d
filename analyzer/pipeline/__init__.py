"""The runtime stages, one module each.

Capture, detect, track, face check, sample, vote, footfall; :mod:`analyzer.pipeline.runner` wires
them to the outputs.
"""
