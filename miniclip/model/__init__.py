"""CLIP itself: the ViT and ResNet image encoders, the CLIP model (text tower inside), checkpoints."""

from .build import build_model, infer_config
from .clip import CLIP
from .convert import convert_checkpoint, load_npz, save_npz
from .resnet import ModifiedResNet
from .vit import VisionTransformer

__all__ = ["CLIP", "VisionTransformer", "ModifiedResNet", "build_model", "infer_config",
           "convert_checkpoint", "load_npz", "save_npz"]
