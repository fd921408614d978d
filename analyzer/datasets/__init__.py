"""Labelled face photos for training and the offline tools.

Labels, photo alignment, camera-like degradation, head outlines, and the accuracy metrics on them.
"""
