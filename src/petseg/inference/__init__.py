"""Inference: settings (threshold, TTA, squash), predictions, scoring, pictures, photos, ONNX, model cards."""
