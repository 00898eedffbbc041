"""`supervised`: the classifier trained on the labelled subset alone, the baseline every
semi-supervised figure is read against (Oliver et al. 2018 insist on one tuned as well as the
methods). Its step is the shared classifier's: cross-entropy on an augmented labelled batch."""

from ssgen.methods.semisup.base import Classifier, ClassifierConfig
from ssgen.registry import METHODS

METHODS.register("supervised")(Classifier)

__all__ = ["Classifier", "ClassifierConfig"]
