"""Models: the one timm factory (architectures) and the checkpoint format (save, restore, load)."""
