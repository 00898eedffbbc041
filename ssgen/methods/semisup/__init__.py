"""Semi-supervised classifiers, one file each on the shared classifier of base.py;
importing this package registers them all."""

from ssgen.methods.semisup import (distill, enaet, entmin, meta_pseudo_labels, noisy_student,  # noqa: F401
                                   pseudo_label, s4l, supervised)
