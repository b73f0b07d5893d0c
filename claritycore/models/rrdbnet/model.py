"""The RRDBNet that `AutoModel.from_config` builds: the architecture plus its config."""

from __future__ import annotations

from claritycore.models.auto import register_model
from claritycore.models.rrdbnet.architecture import RRDBNet
from claritycore.models.rrdbnet.config import RRDBNetConfig


@register_model("rrdbnet")
class RRDBNetModel(RRDBNet):
    """RRDBNet built from an `RRDBNetConfig`, which it keeps as `.config`."""

    def __init__(self, config: RRDBNetConfig) -> None:
        super().__init__(
            in_channels=config.in_channels,
            out_channels=config.out_channels,
            scale=config.scale,
            num_feat=config.num_feat,
            num_block=config.num_block,
            num_grow_ch=config.num_grow_ch,
            upsampler=config.upsampler,
            x2_unshuffle=config.x2_unshuffle,
        )
        self.config = config
