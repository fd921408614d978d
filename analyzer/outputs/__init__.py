"""Where counts go: ZeroMQ, Prometheus and /healthz, the report and its daily files, the preview.

They format what the stages produce (the types of :mod:`analyzer.core`) and never import a stage.
"""
