"""Core: params (the one loader), errors, files, progress, the device and precision, the metrics."""
