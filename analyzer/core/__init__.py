"""Types and pure functions shared by the runtime, the tools and training.

Faces, tracks, visits, zones, age groups, model metadata, face alignment, camera sources. Imports
nothing above it (docs/ARCHITECTURE.md).
"""
