"""Inference with a trained model: test-time augmentation, ensembles and Grad-CAM."""
