"""Small helpers shared by the textcat modules.

The textcat layers run on the CPU only, so their params are numpy arrays; these
accessors give them that type (thinc annotates params as its own array types).
"""

from typing import Optional, cast

import numpy as np
from thinc.api import Model
from thinc.types import FloatsXd


def _param(model: Model, name: str) -> np.ndarray:
    """A param of `model`, as the numpy array it is."""
    return cast(np.ndarray, model.get_param(name))


def _set_param(model: Model, name: str, value: np.ndarray) -> None:
    """Set a param of `model` to a numpy array."""
    model.set_param(name, cast(FloatsXd, value))


def _find_node(model: Model, name: str) -> Optional[Model]:
    """The first node of `model` (itself included) called `name`, or None."""
    for node in model.walk():
        if node.name == name:
            return node
    return None
