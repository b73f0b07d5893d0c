from claritycore.models.rrdbnet.config import RRDBNET_PRESETS, RRDBNetConfig
from claritycore.models.rrdbnet.model import RRDBNetModel

__all__ = ["RRDBNET_PRESETS", "RRDBNetConfig", "RRDBNetModel"]
