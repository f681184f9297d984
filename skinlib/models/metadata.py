"""The metadata branch: image features and encoded age, sex and site fused before the classifier.

As the SIIM-ISIC 2020 winners did (Ha, Liu and Liu 2020): a timm backbone built with
``num_classes=0`` gives its pooled features, a small MLP embeds the metadata vector of
:class:`skinlib.data.metadata.MetadataEncoder`, the two are concatenated and one linear layer
classifies them. Any architecture's backbone works, so ``model.metadata`` is an option of every
recipe. A call without metadata (``model(images)``, as pytorch-grad-cam or a bare upload makes
it) is the "nothing recorded" encoding, stored as a buffer with the weights.
"""

from __future__ import annotations

import torch
from torch import nn

# metadata embedding: a few dozen one-hot and numeric entries need no more than this
HIDDEN = 64  # width of the MLP's hidden layer
EMBEDDING = 32  # width of the metadata embedding concatenated to the image features
DROPOUT = 0.1  # dropout in the MLP: a handful of inputs is easy to memorise


class MetadataNet(nn.Module):
    """Logits (N, C) from images (N, 3, H, W) and their encoded metadata (N, D).

    Args:
        backbone: a timm model without classifier (``num_classes=0``): pooled features.
        num_classes: outputs of the head (1 for a binary task).
        missing: (D,) the encoding of an image with nothing recorded; used when no metadata is
            given, and its length is the metadata width.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, missing: torch.Tensor):
        super().__init__()
        self.backbone = backbone
        width = int(missing.numel())
        self.metadata_mlp = nn.Sequential(
            nn.Linear(width, HIDDEN),
            nn.ReLU(),
            nn.Dropout(DROPOUT),
            nn.Linear(HIDDEN, EMBEDDING),
            nn.ReLU(),
        )
        self.head = nn.Linear(backbone.head_hidden_size + EMBEDDING, num_classes)
        self.register_buffer("missing", missing.float().reshape(-1))

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """The backbone's unpooled features, as timm's ``forward_features``."""
        return self.backbone.forward_features(images)

    def forward_head(
        self,
        features: torch.Tensor,
        pre_logits: bool = False,
        metadata: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits from unpooled features, or (``pre_logits``) the fused features the head sees."""
        pooled = self.backbone.forward_head(features, pre_logits=False)  # num_classes=0: pooled
        if metadata is None:
            metadata = self.missing.expand(len(pooled), -1)
        fused = torch.cat([pooled, self.metadata_mlp(metadata.to(pooled.dtype))], dim=1)
        return fused if pre_logits else self.head(fused)

    def forward(self, images: torch.Tensor, metadata: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_head(self.forward_features(images), metadata=metadata)

    def get_classifier(self) -> nn.Module:
        return self.head

    def new_modules(self) -> list[nn.Module]:
        """What is trained from scratch on top of the backbone: the metadata MLP and the head
        (the head's learning rate, and trained while the backbone is frozen)."""
        return [self.metadata_mlp, self.head]


def logits(
    model: nn.Module, images: torch.Tensor, metadata: torch.Tensor | None = None
) -> torch.Tensor:
    """``model``'s logits of a batch: with the images' metadata where it takes any.

    Raises:
        ValueError: metadata given to a model without a metadata branch.
    """
    if metadata is None:
        return model(images)
    if not isinstance(model, MetadataNet):
        raise ValueError("metadata given to a model without a metadata branch (model.metadata)")
    return model(images, metadata.to(images.device))


class BoundMetadata(nn.Module):
    """``model(images)`` with the metadata of those images bound, for code that calls the model
    on images alone (pytorch-grad-cam's CAMs and metrics).

    One row of metadata is repeated for any batch (ScoreCAM scores many masked copies of one
    image at once); otherwise the batch must have as many images as there are rows.
    """

    def __init__(self, model: MetadataNet, metadata: torch.Tensor):
        super().__init__()
        self.model = model
        self.metadata = metadata

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        metadata = self.metadata.to(images.device)
        if len(metadata) == 1:
            metadata = metadata.expand(len(images), -1)
        elif len(metadata) != len(images):
            raise ValueError(f"{len(metadata)} metadata rows bound for {len(images)} images")
        return self.model(images, metadata)


def bind(model: nn.Module, metadata: torch.Tensor | None) -> nn.Module:
    """The model as a function of images alone: bound to ``metadata`` where it is given."""
    return model if metadata is None else BoundMetadata(model, metadata)
