"""Framework-independent core of asl-serve: classes, decoding, preprocessing, network, postprocessing.

Training, export and the TorchServe handler all import from here, so an image is turned into a
tensor in exactly one way everywhere (no train/serve skew).
"""
