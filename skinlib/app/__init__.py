"""The web app: the Gradio page, the one-image predictor and the upload checks."""
