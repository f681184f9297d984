"""The study front: the notebooks' Study, the papermill pipeline, its jobs, findings and doctor."""
