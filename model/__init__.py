"""Framework-independent core of asl-serve: classes, decoding, hands, preprocessing, postprocessing, the pipeline.

Training, export and the TorchServe handler all import from here (as `asl_serve.model`), so an image is
turned into a tensor in exactly one way everywhere (no train/serve skew). Every archive ships it whole.
"""
