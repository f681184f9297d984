"""The notebook steps of a study, one module per notebook (or pair), each on the study's core."""
