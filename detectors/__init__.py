"""Video detectors: frames in, detections out; motion gating, tracking, rules and evidence around them.

The rest of the pipeline only sees :class:`detectors.interface.Detector`, so the model or the
inference provider (onnxruntime CPU/CUDA, OpenCV DNN) can be swapped without touching it.
"""
