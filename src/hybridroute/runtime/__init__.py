"""Edge runtime: load a verified bundle and classify with ONNX Runtime (no torch)."""

from hybridroute.runtime.bundle import Manifest, load_manifest, read_manifest
from hybridroute.runtime.classifier import EdgeClassifier, softmax

__all__ = ["EdgeClassifier", "Manifest", "load_manifest", "read_manifest", "softmax"]
