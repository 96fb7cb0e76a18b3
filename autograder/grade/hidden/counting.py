"""Parameter counts of a built network, for the hidden checks only.

Counting parameters is itself an exercise (``parameter_counts`` in the
ResNet-18 notebook), so this helper stays on the grader's side and is never
published with the student runtime.
"""
import numpy as onp


def parameter_counts(net):
    """(total, trainable, non-trainable) numbers of scalars in an initialised net."""
    sizes = [(int(onp.prod(p.shape)), p.grad_req == "null") for p in net.collect_params().values()]
    frozen = sum(size for size, is_frozen in sizes if is_frozen)
    total = sum(size for size, _ in sizes)
    return total, total - frozen, frozen
