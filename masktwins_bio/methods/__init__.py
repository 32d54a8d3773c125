"""Domain-adaptation methods (one small registered class each) and the EMA teacher."""

from .base import METHODS, UDAMethod, build_method, register
from .teacher import EMATeacher, ema_alpha
from .variants import MIC, MaskTwins, MaskTwinsRandomPair, MeanTeacher, SourceOnly

__all__ = ["UDAMethod", "build_method", "register", "METHODS", "EMATeacher", "ema_alpha", "SourceOnly",
           "MeanTeacher", "MIC", "MaskTwinsRandomPair", "MaskTwins"]
