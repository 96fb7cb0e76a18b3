"""Plain-NumPy versions of the layers the course uses.

The behaviour checks compare a student's Gluon block against these. They
are written in ordinary NumPy (never MXNet) so that the reference answer does
not depend on the framework code the student may have misused or replaced.
Layout is NCHW throughout, as in Gluon.
"""
import numpy as onp


def conv2d(x, weight, bias=None, stride=1, pad=0):
    """2-D cross-correlation, as Gluon's Conv2D computes it."""
    x = onp.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    kh, kw = weight.shape[2:]
    windows = onp.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))
    windows = windows[:, :, ::stride, ::stride]
    n, c, h, w = windows.shape[:4]
    columns = windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * h * w, c * kh * kw)
    out = (columns @ weight.reshape(weight.shape[0], -1).T).reshape(n, h, w, -1).transpose(0, 3, 1, 2)
    if bias is not None:
        out = out + bias.reshape(1, -1, 1, 1)
    return out


def batch_norm(x, gamma, beta, mean, var, eps=1e-5):
    """Batch normalisation in inference mode (running statistics)."""
    shape = (1, -1, 1, 1)
    scale = gamma.reshape(shape) / onp.sqrt(var.reshape(shape) + eps)
    return (x - mean.reshape(shape)) * scale + beta.reshape(shape)


def relu(x):
    return onp.maximum(x, 0)


def max_pool(x, size=3, stride=2, pad=1):
    """Max pooling; padded cells never win (they hold -inf)."""
    x = onp.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=-onp.inf)
    windows = onp.lib.stride_tricks.sliding_window_view(x, (size, size), axis=(2, 3))
    return windows[:, :, ::stride, ::stride].max(axis=(-2, -1))


def global_avg_pool(x):
    return x.mean(axis=(2, 3), keepdims=True)


def dense(x, weight, bias):
    return x.reshape(x.shape[0], -1) @ weight.T + bias
