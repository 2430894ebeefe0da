"""miniclip: a from-scratch CLIP in NumPy and Cython that people learn from.

The pieces, bottom to top (each imports only the ones above it):

    miniclip.backend    NumPy reference kernels and the compiled ones (set_backend)
    miniclip.autograd   Tensor, Function, no_grad, gradcheck
    miniclip.ops        differentiable ops with hand-written backwards
    miniclip.nn         Module, Parameter, Linear, LayerNorm, MultiheadAttention, Transformer
    miniclip.model      VisionTransformer, CLIP (text tower inside), build_model, convert
    miniclip.loss       clip_loss (symmetric InfoNCE), siglip_loss
    miniclip.tokenizer  BPETokenizer (byte-level BPE, speaks the original CLIP vocabulary)
    miniclip.data       the shapes world, CSV datasets, CLIP preprocessing, the batch loader
    miniclip.training   TrainConfig, train_step, fit, train; AdamW, checkpoints, run folders, MPI
    miniclip.evaluation zero-shot, retrieval, robustness, linear probes, few-shot, the modality gap, plots
    miniclip.api        load (a trained or converted model, as clip.load gives it); miniclip.cli: the commands
    miniclip.tools      build_info, malloc settings, the gradient-check table
"""

from . import nn, ops
from .autograd import Function, GradcheckError, Tensor, gradcheck, no_grad
from .backend import get_backend, get_num_threads, set_backend, set_num_threads
from .tools.info import build_info
from .loss import clip_loss, siglip_loss
from .model import CLIP, VisionTransformer, build_model, convert_checkpoint, load_npz, save_npz
from .tokenizer import BPETokenizer
from .api import load  # after the model: load builds one

__version__ = "0.1.0"

__all__ = ["Tensor", "Function", "no_grad", "gradcheck", "GradcheckError",
           "set_backend", "get_backend", "set_num_threads", "get_num_threads", "build_info", "nn", "ops",
           "CLIP", "VisionTransformer", "build_model", "convert_checkpoint", "load_npz", "save_npz",
           "clip_loss", "siglip_loss", "BPETokenizer", "load"]
