"""Where each label plane sits in an ImageJ stack: the ROI position of a plane (an index, or (c, z, t) in a
hyperstack)."""
from __future__ import annotations

import numpy as np

from microsam_fiji.core.errors import UserError

_LABEL_STACK_AXES = {2: "", 3: "Z", 4: "TZ"}



def stack_positions(labels, stack_axes: str | None = None, imp=None, *, hyperstack: bool | None = None):
    """``labels`` as (Y,X) or (N,Y,X) plus the ImageJ stack position of each plane, for ``labels_to_rois``.

    ``stack_axes``: the ImageJ letters of the leading label axes ("Z", "T", "TZ"; default by dimension).
    Hyperstacks (z and t, or ``imp.isHyperStack()`` / ``hyperstack``) get (c, z, t) positions, other stacks the
    plane index."""
    labels = np.asarray(labels)
    if labels.ndim < 2:
        raise UserError(f"labels must be 2D or a stack of 2D planes, got shape {labels.shape}")
    stack_axes = _LABEL_STACK_AXES.get(labels.ndim) if stack_axes is None else stack_axes.upper()
    if stack_axes is None or len(stack_axes) != labels.ndim - 2 or set(stack_axes) - set("ZT"):
        raise UserError(f"cannot tell the stack axes of labels of shape {labels.shape}: pass stack_axes (e.g. 'TZ')")
    if not stack_axes:
        return labels, None
    if imp is not None:
        hyperstack = bool(imp.isHyperStack())
    elif hyperstack is None:
        hyperstack = len(stack_axes) == 2
    stack_shape = labels.shape[:-2]
    positions = []
    for index in range(int(np.prod(stack_shape))):
        where = dict(zip(stack_axes, np.unravel_index(index, stack_shape)))
        positions.append((0, int(where.get("Z", 0)) + 1, int(where.get("T", 0)) + 1) if hyperstack else index + 1)
    return labels.reshape((-1,) + labels.shape[-2:]), positions
