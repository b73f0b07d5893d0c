from claritycore.models.rrdbnet.config import RRDBNetConfig
from claritycore.models.rrdbnet.model import RRDBNetModel

__all__ = ["RRDBNetConfig", "RRDBNetModel"]
