"""Classifier backends behind one contract (:mod:`analyzer.backends.base`): ONNX Runtime, TensorRT."""
